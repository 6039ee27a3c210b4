/// How long the audit log is kept (Cybersecurity Law Art. 21: network logs at least six
/// months). Pure rules; `pemis-server audit prune` applies them.
public enum AuditRetention {
  public static let minimumMonths = 6

  /// The first day whose entries must still be kept: `months` calendar months before today
  /// (the same day of the month, or the month's last day when it has no such day).
  public static func keptSince(today: CalendarDate, months: Int) -> CalendarDate {
    var month = YearMonth(today)
    for _ in 0..<months { month = month.previous }
    return CalendarDate(year: month.year, month: month.month, day: min(today.day, month.last.day))
  }

  /// Midnight at the start of `date`, Beijing time, in milliseconds since 1970.
  public static func beijingMidnightMs(_ date: CalendarDate) -> Int64 {
    date.beijingMidnight * 1000
  }
}
