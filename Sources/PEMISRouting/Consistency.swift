internal import PEMISDomain
public import PEMISStore

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
    /// The index as the shards say it should be.
    public var expectedIndex: [ChildIndexRecord] = []
  }

  /// Reads every shard and the registry and reports every disagreement.
  public func check() async throws -> CheckReport {
    var report = CheckReport()
    var kindergartens: [KindergartenRecord] = []
    var offset = 0
    while true {
      let page = try await registry.kindergartens(ownership: nil, offset: offset, limit: 5000)
      kindergartens += page.kindergartens
      offset += page.kindergartens.count
      if page.kindergartens.isEmpty || offset >= page.total { break }
    }
    report.kindergartens = kindergartens.count
    // Record number → every shard row holding it.
    var holders: [String: [(code: String, row: ChildRow)]] = [:]
    for kindergarten in kindergartens {
      let code = try InstitutionCode(validating: kindergarten.code)
      guard shards.exists(code) else {
        report.findings.append(Finding(kind: "missing shard", detail: "kindergarten \(kindergarten.code) has no shard file"))
        continue
      }
      for row in try await shards.shard(code).allChildren() {
        holders[row.recordNumber, default: []].append((kindergarten.code, row))
        report.children += 1
      }
    }
    for (number, rows) in holders.sorted(by: { $0.key < $1.key }) {
      let active = rows.filter { $0.row.state.isActive }
      report.activeChildren += active.count
      if active.count > 1 {
        report.findings.append(
          Finding(kind: "active twice", detail: "\(IDDocuments.mask(number)) is active in \(active.map(\.code).sorted().joined(separator: " and "))"))
      }
      let chosen = active.first ?? rows.max { $0.row.createdAt < $1.row.createdAt }!
      report.expectedIndex.append(Self.indexRow(chosen.row, code: chosen.code, at: 0))
    }
    let index = try await registry.allIndexRecords()
    report.indexRows = index.count
    let indexed = Dictionary(uniqueKeysWithValues: index.map { ($0.recordNumber, $0) })
    for expected in report.expectedIndex {
      guard let row = indexed[expected.recordNumber] else {
        report.findings.append(Finding(kind: "not indexed", detail: "\(IDDocuments.mask(expected.recordNumber)) at \(expected.kindergartenCode)"))
        continue
      }
      if !row.agrees(with: expected) {
        report.findings.append(
          Finding(
            kind: "index disagrees",
            detail: "\(IDDocuments.mask(expected.recordNumber)): index says \(row.kindergartenCode) \(row.state.rawValue), shards say \(expected.kindergartenCode) \(expected.state.rawValue)"))
      }
      if row.reservation != nil {
        report.findings.append(Finding(kind: "open reservation", detail: "\(IDDocuments.mask(row.recordNumber)) at \(row.kindergartenCode)"))
      }
    }
    for row in index where holders[row.recordNumber] == nil {
      report.findings.append(
        Finding(kind: "index without record", detail: "\(IDDocuments.mask(row.recordNumber)) at \(row.kindergartenCode) is in no shard"))
    }
    for transfer in try await registry.inFlightTransfers() {
      report.findings.append(Finding(kind: "transfer mid-step", detail: "\(transfer.id) is \(transfer.state.rawValue)"))
    }
    return report
  }

  /// Rebuilds the district index from the shards alone.
  public func rebuildIndex() async throws -> Int {
    let report = try await check()
    let at = now()
    try await registry.replaceIndex(report.expectedIndex.map { var row = $0; row.updatedAt = at; return row })
    return report.expectedIndex.count
  }
}
