internal import Foundation
internal import Logging
internal import PEMISDomain
internal import PEMISStore

/// Key rotation and its bookkeeping (docs/OPERATIONS.md, "Encryption at rest").
extension Tenancy {
  /// Who a rotation is recorded as in the audit log.
  static let keyActor = "(pemis-server key)"

  /// A kindergarten whose shard a key command could not open or re-seal: the others go on,
  /// and the operator is told which one to look at.
  public struct UnreadableShard: Sendable, Equatable {
    public var code: String
    public var message: String
  }

  /// How many protected values are sealed under each data key (0: not sealed), in the registry
  /// and every shard, and the shards that could not be read.
  public func sealedValueCounts() async throws -> (counts: [UInt32: Int], unreadable: [UnreadableShard]) {
    var counts = try await registry.sealedValueCounts()
    var unreadable: [UnreadableShard] = []
    for code in try await kindergartenCodes() {
      do {
        for (key, n) in try await shards.shard(code).sealedValueCounts() { counts[key, default: 0] += n }
      } catch {
        unreadable.append(UnreadableShard(code: code.rawValue, message: "\(error)"))
      }
    }
    return (counts, unreadable)
  }

  /// Re-seals under the active key every value an older key sealed (or none did): the
  /// registry, then each shard in a transaction of its own, while the server goes on. A shard
  /// that cannot be opened or re-sealed (a missing file, a damaged one) does not stop the
  /// others; it is returned, and the audit entry records the pass as FAILED_PRECONDITION with
  /// its code. Audited before and after. Returns how many values it re-sealed.
  public func resealAll() async throws -> (count: Int, unreadable: [UnreadableShard]) {
    let active = registry.keys.activeKey
    var entry = AuditRecord(
      atMs: now() * 1000, username: Self.keyActor, role: "system", kindergartenCode: "",
      method: "data key reseal", targets: ["data-key:\(active)"], result: AuditRecord.startedResult, peer: "")
    try await registry.appendAudit(entry)
    var count = try await registry.reseal()
    var unreadable: [UnreadableShard] = []
    for code in try await kindergartenCodes() {
      do {
        count += try await shards.shard(code).reseal()
      } catch {
        unreadable.append(UnreadableShard(code: code.rawValue, message: "\(error)"))
        logger.error("data keys: kindergarten \(code.rawValue) could not be re-sealed: \(error)")
      }
    }
    entry.atMs = now() * 1000
    entry.targets = (["data-key:\(active)", "values:\(count)"] + unreadable.map { "kindergarten:\($0.code)" }).joined(separator: ",")
    entry.result = unreadable.isEmpty ? "OK" : "FAILED_PRECONDITION"
    try await registry.appendAudit(entry)
    logger.info("data keys: re-sealed \(count) values under data key \(active); \(unreadable.count) kindergartens could not be read")
    return (count, unreadable)
  }

  private func kindergartenCodes() async throws -> [InstitutionCode] {
    try await registry.kindergartens(ownership: nil, offset: 0, limit: Int.max).kindergartens.map { try InstitutionCode(validating: $0.code) }
  }
}
