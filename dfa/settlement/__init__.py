"""Settlement instructions, the DvP/DvD engine, the order book, money in and out."""
