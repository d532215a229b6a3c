"""Refusals of issuance, grouped by the part of issuance that raises them."""

from dfa.platform.errors import Category, DomainError

# --- issuers, documents, underlying assets, certification ----------------------------------------------


class IssuerNotFound(DomainError):
    type = "issuer-not-found"
    title = "No such issuer"
    category = Category.NOT_FOUND


class IssuerAlreadyOnboarded(DomainError):
    type = "issuer-already-onboarded"
    title = "The party is an issuer already"
    category = Category.CONFLICT


class IssuerMustBeLegalEntity(DomainError):
    type = "issuer-must-be-legal-entity"
    title = "Only a legal entity (with a BIN) can be an issuer"
    category = Category.REFUSED


class ConsentRequired(DomainError):
    """The operator needs the issuer's consent to ask custodians about its assets (REQ-27) and to process
    personal data (REQ-57) before it deals with it."""

    type = "consent-required"
    title = "A required consent was not given"
    category = Category.REFUSED


class RepresentativeNotFound(DomainError):
    type = "representative-not-found"
    title = "No such representative"
    category = Category.NOT_FOUND


class RepresentativeAlreadyActive(DomainError):
    type = "representative-already-active"
    title = "This person already represents the issuer"
    category = Category.CONFLICT


class DocumentNotFound(DomainError):
    type = "document-not-found"
    title = "No such document"
    category = Category.NOT_FOUND


class DocumentEmpty(DomainError):
    type = "document-empty"
    title = "The document is empty"
    category = Category.INVALID


class DocumentTooLarge(DomainError):
    type = "document-too-large"
    title = "The document is larger than allowed"
    category = Category.INVALID


class DocumentTypeUnsupported(DomainError):
    """Only PDF, PNG, JPEG, DOCX and XLSX documents are kept, recognised by their content."""

    type = "document-type-unsupported"
    title = "This kind of file is not accepted"
    category = Category.INVALID


class UnderlyingAssetNotFound(DomainError):
    type = "underlying-asset-not-found"
    title = "No such underlying asset"
    category = Category.NOT_FOUND


class UnderlyingAssetAlreadyRegistered(DomainError):
    type = "underlying-asset-already-registered"
    title = "The custodian's asset is registered already"
    category = Category.CONFLICT


class IssuerBlockNotFound(DomainError):
    type = "issuer-block-not-found"
    title = "No such block"
    category = Category.NOT_FOUND


class IssuerBlockNotLiftable(DomainError):
    """A block opened by a reconciliation breach is lifted only by a later clean check (REQ-31)."""

    type = "issuer-block-not-liftable"
    title = "This block cannot be lifted by hand"
    category = Category.REFUSED


class CertificationApplicationMismatch(DomainError):
    type = "certification-application-mismatch"
    title = "The application is not backed by this underlying asset"
    category = Category.INVALID


# --- applications and registration ---------------------------------------------------------------------


class ApplicantNotOnboarded(DomainError):
    """Only an onboarded issuer (documents and consents on file) may apply for an emission."""

    type = "applicant-not-onboarded"
    title = "The applicant is not an onboarded issuer"
    category = Category.REFUSED


class ApplicationTermsInvalid(DomainError):
    type = "emission-application-terms-invalid"
    title = "The terms of the emission are not valid"
    category = Category.INVALID


class ApplicationUnderlyingAssetUnknown(DomainError):
    type = "emission-application-underlying-asset-unknown"
    title = "The issuer has no such underlying asset"
    category = Category.INVALID


class ApplicationStepNotAllowed(DomainError):
    """The step does not follow from the application's status (it was taken already, or the
    application moved on); the status is in the context."""

    type = "emission-application-step-not-allowed"
    title = "This step is not allowed in the application's status"
    category = Category.CONFLICT


class HearingDateInvalid(DomainError):
    type = "emission-application-hearing-date-invalid"
    title = "The hearing must be on a business day after the objections deadline"
    category = Category.INVALID


class ObjectionsTooLate(DomainError):
    type = "emission-application-objections-too-late"
    title = "The deadline for objections has passed"
    category = Category.REFUSED


class ObjectionsAlreadyRecorded(DomainError):
    type = "emission-application-objections-recorded"
    title = "The issuer's objections are already recorded"
    category = Category.CONFLICT


class HearingNotYetDue(DomainError):
    """The issuer is heard on the hearing date it was given, not earlier (REQ-06)."""

    type = "emission-application-hearing-not-due"
    title = "The hearing date has not come"
    category = Category.CONFLICT


class UnderlyingNotCertified(DomainError):
    """No certification of the underlying asset for this application (REQ-22, REQ-28)."""

    type = "registration-underlying-not-certified"
    title = "The underlying asset is not certified"
    category = Category.REFUSED


class CertificationOutdated(DomainError):
    type = "registration-certification-outdated"
    title = "The certification of the underlying asset is too old to rely on"
    category = Category.REFUSED


class UnderlyingAssetDoesNotExist(DomainError):
    """The custodian did not confirm the underlying asset exists (REQ-22: registration only after it does)."""

    type = "registration-underlying-does-not-exist"
    title = "The underlying asset's existence is not confirmed"
    category = Category.REFUSED


class UnderlyingLegalStatusNotClear(DomainError):
    type = "registration-underlying-legal-status"
    title = "The underlying asset's legal status is not clear"
    category = Category.REFUSED


class UnderlyingEncumbered(DomainError):
    type = "registration-underlying-encumbered"
    title = "The underlying asset is encumbered"
    category = Category.REFUSED


class UnderlyingValueShort(DomainError):
    """REQ-29: no registration while the underlying asset's value is short of the issue volume at the
    required ratio; the application waits for the issuer's cure and a fresh certification."""

    type = "registration-underlying-value-short"
    title = "The underlying asset's value does not cover the issue volume"
    category = Category.REFUSED


class CertificationNotPassed(DomainError):
    """The certification failed on a finding none of the named refusals covers; its findings are in the context."""

    type = "registration-certification-not-passed"
    title = "The certification of the underlying asset did not pass"
    category = Category.REFUSED


class IssuerBlocked(DomainError):
    """REQ-31: an open block (a reconciliation breach or the operator's decision) stops the issuer's
    new registrations until it is lifted."""

    type = "registration-issuer-blocked"
    title = "The issuer's new emissions are blocked"
    category = Category.REFUSED


class SecurityProtocolNotRecorded(DomainError):
    """REQ-60: no issuance before the cybersecurity test protocol's submission to the National Bank is recorded."""

    type = "registration-security-protocol-not-recorded"
    title = "The security test protocol's submission is not recorded"
    category = Category.REFUSED


class SecurityProtocolTooRecent(DomainError):
    """REQ-60: issuance begins 10 business days after the security test protocol was submitted."""

    type = "registration-security-protocol-too-recent"
    title = "Ten business days have not passed since the security test protocol was submitted"
    category = Category.REFUSED


class ApplicationNotFound(DomainError):
    type = "emission-application-not-found"
    title = "No such emission application"
    category = Category.NOT_FOUND


class EmissionNotFound(DomainError):
    type = "emission-not-found"
    title = "No such emission"
    category = Category.NOT_FOUND


class RegistrationNumberInvalid(DomainError):
    """The operator's National Bank number cannot prefix an emission number (REQ-23): a configuration error."""

    type = "registration-number-invalid"
    title = "The emission registration number cannot be formed"
    category = Category.REFUSED


# --- placement and redemption ----------------------------------------------------------------------------


class SnapshotNotFound(DomainError):
    type = "snapshot-not-found"
    title = "No such holders snapshot"
    category = Category.NOT_FOUND


class SnapshotInstantInvalid(DomainError):
    """A snapshot is taken as of a record date's close or an instant (not both), and never of the future."""

    type = "snapshot-instant-invalid"
    title = "The snapshot's record date or instant is not valid"
    category = Category.INVALID


class PlacementNotFound(DomainError):
    type = "placement-not-found"
    title = "No such placement"
    category = Category.NOT_FOUND


class PlacementTermsInvalid(DomainError):
    """Units, price, minimum or window do not fit the application's terms or the issuer's available units."""

    type = "placement-terms-invalid"
    title = "The placement's terms are not valid"
    category = Category.INVALID


class EmissionNotPlaceable(DomainError):
    """The emission has an open placement already, or is redeemed or in default; its status is in the context."""

    type = "emission-not-placeable"
    title = "The emission cannot be placed in its status"
    category = Category.CONFLICT


class PlacementNotOpen(DomainError):
    """The placement is closed, or its subscription window is not open at this instant."""

    type = "placement-not-open"
    title = "The placement is not open for subscriptions"
    category = Category.CONFLICT


class PlacementStillOpen(DomainError):
    """The subscription window has not closed yet, so there is no allocation and no report."""

    type = "placement-still-open"
    title = "The placement's subscription window has not closed"
    category = Category.CONFLICT


class SubscriptionNotFound(DomainError):
    type = "subscription-not-found"
    title = "No such subscription"
    category = Category.NOT_FOUND


class SubscriptionInvalid(DomainError):
    type = "subscription-invalid"
    title = "The subscription is not valid"
    category = Category.INVALID


class SubscriptionExists(DomainError):
    """One live subscription per investor and placement: cancel it to subscribe again."""

    type = "subscription-exists"
    title = "You already have a live subscription to this placement"
    category = Category.CONFLICT


class SubscriptionNotCancellable(DomainError):
    type = "subscription-not-cancellable"
    title = "The subscription can no longer be cancelled"
    category = Category.CONFLICT


class RedemptionNotAllowed(DomainError):
    """Maturity has not come, the terms forbid early redemption, or the emission is redeemed already."""

    type = "redemption-not-allowed"
    title = "The emission cannot be redeemed now"
    category = Category.REFUSED


class RedemptionBlocked(DomainError):
    """A placement is open, or units are encumbered by an operation that has not finished (other than a
    freeze); redemption waits until it ends, since it never pays half."""

    type = "redemption-blocked"
    title = "The emission cannot be redeemed while an operation on it is pending"
    category = Category.CONFLICT


# --- holder protections, suspensions, trading platforms, central depository export -----------------------


class FreezeNotFound(DomainError):
    type = "freeze-not-found"
    title = "No such freeze"
    category = Category.NOT_FOUND


class FreezeNotActive(DomainError):
    """The freeze was lifted already (by staff, or when its units moved)."""

    type = "freeze-not-active"
    title = "The freeze is no longer active"
    category = Category.CONFLICT


class HolderUnitsShort(DomainError):
    """The holder has fewer units (available, or available and frozen where an order may take those) than
    the operation needs."""

    type = "holder-units-short"
    title = "The holder has fewer units than the operation needs"
    category = Category.REFUSED


class ForcedTransferInvalid(DomainError):
    type = "forced-transfer-invalid"
    title = "The forced transfer is not valid as requested"
    category = Category.INVALID


class SuspensionInvalid(DomainError):
    """An issuer event suspends every emission of the issuer and names none; the operator's decision
    names exactly one emission."""

    type = "suspension-invalid"
    title = "The trading suspension is not valid as requested"
    category = Category.INVALID


class ArrestBelowHalf(DomainError):
    """REQ-62 (3): only an arrest of more than half of the issuer's assets suspends trading."""

    type = "suspension-arrest-not-over-half"
    title = "An arrest of at most half of the issuer's assets does not suspend trading"
    category = Category.REFUSED


class SuspensionNotFound(DomainError):
    type = "suspension-not-found"
    title = "No such trading suspension"
    category = Category.NOT_FOUND


class SuspensionAlreadyLifted(DomainError):
    type = "suspension-already-lifted"
    title = "The trading suspension was lifted already"
    category = Category.CONFLICT


class TradingPlatformNotFound(DomainError):
    type = "trading-platform-not-found"
    title = "No such active trading platform"
    category = Category.NOT_FOUND


class TradingPlatformExists(DomainError):
    type = "trading-platform-exists"
    title = "A trading platform with this code is registered already"
    category = Category.CONFLICT


class EmissionNotTransferable(DomainError):
    """The encumbrance and restriction check before a transfer to a trading platform failed (REQ-44);
    `findings` lists every reason."""

    type = "emission-not-transferable"
    title = "These units cannot move to a trading platform"
    category = Category.REFUSED


class PlatformUnitsShort(DomainError):
    """A return from a trading platform names more units than that platform holds of the emission."""

    type = "platform-units-short"
    title = "The trading platform holds fewer units of the emission"
    category = Category.REFUSED


class PlatformTransferNotFound(DomainError):
    type = "platform-transfer-not-found"
    title = "No such transfer to or from a trading platform"
    category = Category.NOT_FOUND


class RegistryDateNotClosed(DomainError):
    """The holders registry for the central depository is fixed at a business day's close, which for
    this date has not come yet."""

    type = "registry-date-not-closed"
    title = "The registry date has not closed yet"
    category = Category.REFUSED
