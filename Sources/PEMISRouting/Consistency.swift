internal import Foundation
internal import PEMISDomain
internal import PEMISStore

/// The invariant of the routing layer, checked from the shards up (`pemis-server check`): every
/// record number is active in at most one shard, the district index says what the shards say,
/// and no transfer or reservation is left mid-step.
extension Router {
  public struct Finding: Sendable, Hashable, CustomStringConvertible {
    public var kind: String
    public var detail: String
    public var description: String { "\(kind): \(detail)" }
  }

  public struct CheckReport: Sendable {
    public var kindergartens = 0
    public var children = 0
    public var activeChildren = 0
    public var indexRows = 0
    public var findings: [Finding] = []
    /// Record number → kindergarten of each child the shards say is enrolled; filled only when
    /// asked for (the kill harness), since it grows with the district.
    public var enrolled: [String: String] = [:]
  }

  /// Rows compared per page: the check holds pages, never the whole district.
  static let checkPage = 1_000

  /// Reads every shard and the registry and reports every disagreement. The index the shards
  /// imply is gathered in a scratch SQLite file and compared with the registry page by page, so
  /// memory does not grow with the district.
  public func check(collectEnrolled: Bool = false) async throws -> CheckReport {
    let scratch = try IndexScratch(directory: (registry.path as NSString).deletingLastPathComponent)
    defer { scratch.close() }
    var report = try await gather(into: scratch)
    // Each row the shards imply: in the index, and saying the same.
    var after: String?
    while true {
      let page = try await scratch.expected(after: after, limit: Self.checkPage)
      guard let last = page.last else { break }
      after = last.recordNumber
      let indexed = try await registry.indexRecords(page.map(\.recordNumber))
      let disagreeing = page.filter { expected in indexed[expected.recordNumber].map { !$0.agrees(with: expected) } ?? false }
      let tied = try await scratch.tied(disagreeing.map(\.recordNumber))
      for expected in page {
        if collectEnrolled && expected.state == .enrolled { report.enrolled[expected.recordNumber] = expected.kindergartenCode }
        guard let row = indexed[expected.recordNumber] else {
          report.findings.append(Finding(kind: "not indexed", detail: "\(IDDocuments.mask(expected.recordNumber)) at \(expected.kindergartenCode)"))
          continue
        }
        // Closed records the shards cannot order (made in the same second): either is right.
        if !row.agrees(with: expected) && !(tied[expected.recordNumber] ?? []).contains(where: row.agrees(with:)) {
          report.findings.append(
            Finding(
              kind: "index disagrees",
              detail: "\(IDDocuments.mask(expected.recordNumber)): index says \(row.kindergartenCode) \(row.state.rawValue), shards say \(expected.kindergartenCode) \(expected.state.rawValue)"))
        }
      }
    }
    // Each index row: some shard holds its record.
    after = nil
    while true {
      let page = try await registry.indexRecords(after: after, limit: Self.checkPage)
      guard let last = page.last else { break }
      after = last.recordNumber
      let expected = try await scratch.expected(page.map(\.recordNumber))
      for row in page where expected[row.recordNumber] == nil {
        report.findings.append(
          Finding(kind: "index without record", detail: "\(IDDocuments.mask(row.recordNumber)) at \(row.kindergartenCode) is in no shard"))
      }
    }
    report.indexRows = try await registry.indexCount()
    for reservation in try await registry.openReservations() {
      report.findings.append(
        Finding(
          kind: "open reservation",
          detail: "\(reservation.purpose) at \(reservation.kindergartenCode) (\(reservation.id), \(now() - reservation.createdAt) s old)"))
    }
    for transfer in try await registry.inFlightTransfers() {
      let age = now() - transfer.updatedAt
      // Mid-step for longer than a step takes: something keeps it from finishing.
      let stuck = age >= stuckTransferSeconds
      report.findings.append(
        Finding(
          kind: stuck ? "transfer stuck" : "transfer mid-step",
          detail: "\(transfer.id) is \(transfer.state.rawValue)" + (stuck ? " for \(age / 60) minutes; pemis transfer abort \(transfer.id) ends it" : "")))
    }
    return report
  }

  /// Reads every kindergarten's shard into `scratch` and finishes it: the counts, missing shards
  /// and record numbers active twice.
  func gather(into scratch: IndexScratch) async throws -> CheckReport {
    var report = CheckReport()
    var offset = 0
    while true {
      let page = try await registry.kindergartens(ownership: nil, offset: offset, limit: 5000)
      offset += page.kindergartens.count
      for kindergarten in page.kindergartens {
        report.kindergartens += 1
        let code = try InstitutionCode(validating: kindergarten.code)
        guard shards.exists(code) else {
          report.findings.append(Finding(kind: "missing shard", detail: "kindergarten \(kindergarten.code) has no shard file"))
          continue
        }
        let rows = try await shards.shard(code).allChildren()
        try await scratch.add(rows.map { (Self.indexRow($0, code: kindergarten.code, at: 0), $0.createdAt) })
        report.children += rows.count
      }
      if page.kindergartens.isEmpty || offset >= page.total { break }
    }
    let gathered = try await scratch.finish()
    report.activeChildren = gathered.active
    for (number, codes) in gathered.activeTwice {
      report.findings.append(Finding(kind: "active twice", detail: "\(IDDocuments.mask(number)) is active in \(codes.joined(separator: " and "))"))
    }
    return report
  }

  /// Rebuilds the district index from the shards alone; returns how many records it holds.
  public func rebuildIndex() async throws -> Int {
    let scratch = try IndexScratch(directory: (registry.path as NSString).deletingLastPathComponent)
    defer { scratch.close() }
    _ = try await gather(into: scratch)
    return try await registry.replaceIndex(from: scratch, at: now())
  }
}
