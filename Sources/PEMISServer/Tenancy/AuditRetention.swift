internal import Foundation
public import PEMISDomain
internal import PEMISStore

extension Tenancy {
  /// `pemis-server audit prune --before DATE`: removes the entries written before that day
  /// (Beijing time), never one of the last `retentionMonths` (at least six). The prune is an
  /// entry of its own, written first (fail closed), then its outcome. Returns how many went.
  public func pruneAuditLog(before date: CalendarDate, retentionMonths: Int) async throws -> Int {
    let months = max(retentionMonths, AuditRetention.minimumMonths)
    let keptSince = AuditRetention.keptSince(today: today, months: months)
    guard date <= keptSince else {
      throw StoreError(
        .failedPrecondition,
        "--before: \(date) is within the last \(months) months; entries since \(keptSince) are kept (Cybersecurity Law Art. 21), nothing was removed")
    }
    var entry = AuditRecord(
      atMs: now() * 1000, username: Self.operatorName, role: "operator", kindergartenCode: "", method: "pemis-server audit prune",
      targets: ["audit:before \(date)"], result: AuditRecord.startedResult, peer: "host:pid \(ProcessInfo.processInfo.processIdentifier)")
    try await registry.appendAudit(entry)
    do {
      let pruned = try await registry.pruneAuditLog(
        beforeMs: AuditRetention.beijingMidnightMs(date), keptSinceMs: AuditRetention.beijingMidnightMs(keptSince))
      entry.targets = "audit:before \(date),removed \(pruned.removed)" + (pruned.through.map { ",through \($0.sequence)" } ?? "")
      entry.result = "OK"
      entry.atMs = now() * 1000
      try await registry.appendAudit(entry)
      return pruned.removed
    } catch {
      entry.result = "FAILED_PRECONDITION"
      _ = try? await registry.appendAudit(entry)
      throw error
    }
  }
}
