"""Named refusals of identity and access."""

from typing import ClassVar

from dfa.platform.errors import Category, DomainError


class PartyNotFound(DomainError):
    type = "party-not-found"
    title = "No such party"
    category = Category.NOT_FOUND


class PartyAlreadyExists(DomainError):
    type = "party-already-exists"
    title = "A party with this identification number exists"
    category = Category.CONFLICT


class InvalidIdentificationNumber(DomainError):
    type = "invalid-identification-number"
    title = "The IIN or BIN is not valid"
    category = Category.INVALID


class IdentityDataMismatch(DomainError):
    type = "identity-data-mismatch"
    title = "The date of birth or sex does not match the IIN"
    category = Category.INVALID


class UnderAge(DomainError):
    type = "under-age"
    title = "The platform serves adults only (18 years and older)"
    category = Category.REFUSED


class PartyNotIdentified(DomainError):
    type = "party-not-identified"
    title = "The party is not identified"
    category = Category.REFUSED


class RemoteIdentificationNotAllowed(DomainError):
    type = "remote-identification-not-allowed"
    title = "This party cannot be identified remotely"
    category = Category.REFUSED


class IdentityNotConfirmed(DomainError):
    type = "identity-not-confirmed"
    title = "The identity could not be confirmed"
    category = Category.REFUSED


class InvalidKycDecision(DomainError):
    type = "invalid-kyc-decision"
    title = "The identification decision is not valid"
    category = Category.INVALID


class AntiFraudMatch(DomainError):
    type = "antifraud-match"
    title = "The anti-fraud centre flagged a party to this operation"
    category = Category.REFUSED


class NotAuthenticated(DomainError):
    type = "not-authenticated"
    title = "Sign in or present valid credentials"
    category = Category.UNAUTHENTICATED
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="dfa"'}


class Forbidden(DomainError):
    type = "forbidden"
    title = "Your role may not do this"
    category = Category.FORBIDDEN


class CsrfTokenInvalid(DomainError):
    type = "csrf-token-invalid"
    title = "The request's CSRF token is missing or wrong"
    category = Category.FORBIDDEN


class SignInFailed(DomainError):
    type = "sign-in-failed"
    title = "Sign-in failed"
    category = Category.UNAUTHENTICATED


class SecondFactorRequired(DomainError):
    type = "second-factor-required"
    title = "A one-time code from the authenticator is required"
    category = Category.UNAUTHENTICATED


class TooManyAttempts(DomainError):
    type = "too-many-attempts"
    title = "Too many attempts; wait and try again"
    category = Category.TOO_MANY


class PasswordPolicyViolation(DomainError):
    type = "password-policy"
    title = "The password does not meet the password policy"
    category = Category.INVALID


class GrantInvalid(DomainError):
    type = "grant-invalid"
    title = "The recovery or enrolment token is invalid, used or expired"
    category = Category.REFUSED


class UserNotFound(DomainError):
    type = "user-not-found"
    title = "No such user"
    category = Category.NOT_FOUND


class LoginTaken(DomainError):
    type = "login-taken"
    title = "This login is taken"
    category = Category.CONFLICT


class InvalidUser(DomainError):
    type = "invalid-user"
    title = "The user cannot be set up this way"
    category = Category.INVALID


class CredentialNotFound(DomainError):
    type = "credential-not-found"
    title = "No such API credential"
    category = Category.NOT_FOUND


class InvalidClient(DomainError):
    type = "invalid-client"
    title = "The client credentials are not valid"
    category = Category.UNAUTHENTICATED
