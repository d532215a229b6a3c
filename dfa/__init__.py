"""Core system of a digital financial asset (DFA) platform operator."""
