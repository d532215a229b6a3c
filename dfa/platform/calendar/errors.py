"""Every refusal of the business-day calendar, by name."""

from dfa.platform.errors import Category, DomainError


class DateOutsideCalendar(DomainError):
    type = "calendar-date-outside-range"
    title = "The date is outside the years the business-day calendar covers"
    category = Category.INVALID


class InvalidDateRange(DomainError):
    type = "calendar-invalid-date-range"
    title = "The date range is not valid"
    category = Category.INVALID


class NegativeBusinessDays(DomainError):
    type = "calendar-negative-business-days"
    title = "A number of business days cannot be negative"
    category = Category.INVALID


class NotABusinessDay(DomainError):
    type = "calendar-not-a-business-day"
    title = "The day is not a business day"
    category = Category.INVALID


class InstantWithoutTimeZone(DomainError):
    type = "calendar-instant-without-time-zone"
    title = "The instant carries no time zone offset"
    category = Category.INVALID


class UnknownOverrideKind(DomainError):
    type = "calendar-unknown-override-kind"
    title = "A day is overridden as working or day_off"
    category = Category.INVALID


class InvalidOverrideReason(DomainError):
    type = "calendar-invalid-override-reason"
    title = "Changing the calendar needs a reason of reasonable length"
    category = Category.INVALID


class PastDayCannotChange(DomainError):
    type = "calendar-past-day-cannot-change"
    title = "A day that has passed cannot be changed"
    category = Category.REFUSED


class OverrideNotFound(DomainError):
    type = "calendar-override-not-found"
    title = "The day has no override"
    category = Category.NOT_FOUND
