internal import Foundation
internal import Logging
internal import PEMISDomain
internal import PEMISStore

/// Key rotation and its bookkeeping (docs/OPERATIONS.md, "Encryption at rest").
extension Tenancy {
  /// Who a rotation is recorded as in the audit log.
  static let keyActor = "(pemis-server key)"

  /// How many protected values are sealed under each data key, in the registry and every shard.
  public func sealedValueCounts() async throws -> [UInt32: Int] {
    var counts = try await registry.sealedValueCounts()
    for code in try await kindergartenCodes() {
      for (key, n) in try await shards.shard(code).sealedValueCounts() { counts[key, default: 0] += n }
    }
    return counts
  }

  /// Re-seals under the active key every value an older key sealed: the registry, then each
  /// shard in a transaction of its own, while the server goes on. Audited before and after.
  /// Returns how many values it re-sealed.
  public func resealAll() async throws -> Int {
    let active = registry.keys.activeKey
    var entry = AuditRecord(
      atMs: now() * 1000, username: Self.keyActor, role: "system", kindergartenCode: "",
      method: "data key reseal", targets: ["data-key:\(active)"], result: AuditRecord.startedResult, peer: "")
    try await registry.appendAudit(entry)
    var count = try await registry.reseal()
    for code in try await kindergartenCodes() {
      count += try await shards.shard(code).reseal()
    }
    entry.atMs = now() * 1000
    entry.targets = "data-key:\(active),values:\(count)"
    entry.result = "OK"
    try await registry.appendAudit(entry)
    logger.info("data keys: re-sealed \(count) values under data key \(active)")
    return count
  }

  private func kindergartenCodes() async throws -> [InstitutionCode] {
    try await registry.kindergartens(ownership: nil, offset: 0, limit: Int.max).kindergartens.map { try InstitutionCode(validating: $0.code) }
  }
}
