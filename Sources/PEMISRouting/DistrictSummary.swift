internal import Synchronization
public import PEMISDomain
public import PEMISStore

/// The district summary, fanned out over the kindergartens' shards (docs/ROUTING.md). Each
/// kindergarten's counts are cached with its shard's write generation, so a repeated summary
/// reads only the shards that changed; the first one after a start reads every shard.
public struct DistrictSummary: Sendable {
  public struct Row: Sendable {
    public var kindergarten: KindergartenRecord
    public var summary: KindergartenSummary
    public var pendingTransfers: Int
    public var openCases: Int
  }
  public var rows: [Row]
  /// The 1 September ages are counted on.
  public var agesOn: CalendarDate
  /// How many shards had to be read (the rest came from the cache).
  public var shardsRead: Int

  /// Every kindergarten's counts added up (classes listed by kindergarten, not here).
  public var total: KindergartenSummary {
    var total = KindergartenSummary()
    for row in rows {
      let s = row.summary
      total.children += s.children
      total.byGender.merge(s.byGender, uniquingKeysWith: +)
      total.byDocumentType.merge(s.byDocumentType, uniquingKeysWith: +)
      total.byAge.merge(s.byAge, uniquingKeysWith: +)
      total.byGrade.merge(s.byGrade, uniquingKeysWith: +)
      total.staffByPost.merge(s.staffByPost, uniquingKeysWith: +)
    }
    return total
  }

  public var childrenByOwnership: [Ownership: Int] {
    rows.reduce(into: [:]) { $0[$1.kindergarten.ownership, default: 0] += $1.summary.children }
  }
}

/// Each kindergarten's counts with the write generation of its shard they were read at: an
/// entry is current while the generation is the same (every shard write bumps it).
final class SummaryCache: Sendable {
  private let entries = Mutex<[String: (generation: UInt64, agesOn: CalendarDate, summary: KindergartenSummary)]>([:])

  func get(_ code: String, generation: UInt64?, agesOn: CalendarDate) -> KindergartenSummary? {
    entries.withLock { entries in
      guard let entry = entries[code], let generation, entry.generation == generation, entry.agesOn == agesOn else { return nil }
      return entry.summary
    }
  }

  func put(_ code: String, generation: UInt64, agesOn: CalendarDate, _ summary: KindergartenSummary) {
    entries.withLock { $0[code] = (generation, agesOn, summary) }
  }
}

extension Router {
  /// The 1 September of the school year `date` falls in.
  public static func schoolYearStart(_ date: CalendarDate) -> CalendarDate {
    CalendarDate(year: date.month >= 9 ? date.year : date.year - 1, month: 9, day: 1)
  }

  /// The summary of the given kindergartens (all active ones when nil), narrowed to an ownership
  /// when the caller's scope says so.
  public func districtSummary(codes: [String]?, ownership: Ownership?, parallelism: Int = 8) async throws -> DistrictSummary {
    var kindergartens: [KindergartenRecord] = []
    var offset = 0
    while true {
      let page = try await registry.kindergartens(ownership: ownership, offset: offset, limit: 5000)
      kindergartens += page.kindergartens
      offset += page.kindergartens.count
      if page.kindergartens.isEmpty || offset >= page.total { break }
    }
    if let codes {
      let wanted = Set(codes)
      let known = Set(kindergartens.map(\.code))
      if let missing = wanted.subtracting(known).sorted().first {
        throw StoreError(.notFound, "kindergarten_codes: no active kindergarten \(missing) in your scope")
      }
      kindergartens = kindergartens.filter { wanted.contains($0.code) }
    }
    let agesOn = Self.schoolYearStart(today)
    let transfers = try await registry.pendingTransferCounts()
    let cases = try await registry.openCaseCounts()
    var summaries: [String: KindergartenSummary] = [:]
    var misses: [KindergartenRecord] = []
    for kindergarten in kindergartens {
      let code = try InstitutionCode(validating: kindergarten.code)
      if let cached = summaries[kindergarten.code] ?? self.summaries.get(kindergarten.code, generation: shards.generation(code), agesOn: agesOn) {
        summaries[kindergarten.code] = cached
      } else {
        misses.append(kindergarten)
      }
    }
    try await withThrowingTaskGroup(of: (String, KindergartenSummary).self) { group in
      var next = misses.makeIterator()
      func add() -> Bool {
        guard let kindergarten = next.next() else { return false }
        group.addTask {
          let code = try InstitutionCode(validating: kindergarten.code)
          let shard = try await self.shards.shard(code)
          // The generation before the read: a write during it makes the entry stale, not wrong.
          let generation = self.shards.generation(code) ?? 0
          let summary = try await shard.summary(agesOn: agesOn)
          self.summaries.put(kindergarten.code, generation: generation, agesOn: agesOn, summary)
          return (kindergarten.code, summary)
        }
        return true
      }
      for _ in 0..<max(1, parallelism) where add() {}
      while let (code, summary) = try await group.next() {
        summaries[code] = summary
        _ = add()
      }
    }
    return DistrictSummary(
      rows: kindergartens.map {
        DistrictSummary.Row(
          kindergarten: $0, summary: summaries[$0.code] ?? KindergartenSummary(), pendingTransfers: transfers[$0.code] ?? 0,
          openCases: cases[$0.code] ?? 0)
      },
      agesOn: agesOn, shardsRead: misses.count)
  }
}
