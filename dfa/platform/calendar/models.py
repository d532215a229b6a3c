"""Tables of the business-day calendar: the operator's overrides of the statutory calendar."""

from datetime import date, datetime

from sqlalchemy import CheckConstraint, Date, DateTime, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from dfa.platform.database import Base

# "working": the day is a business day whatever the weekend rule or the statute says (a Saturday
# worked under a government day transfer); "day_off": it is not (the weekday that transfer freed,
# an extra day off declared by decree).
OVERRIDE_KINDS = ("working", "day_off")


class Override(Base):
    """The operator's word on one day, taking precedence over the weekend rule and the public holidays."""

    __tablename__ = "calendar_day_overrides"
    __table_args__ = (CheckConstraint("kind IN ('working', 'day_off')", name="kind"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
