internal import Foundation
internal import Logging
internal import PEMISDomain
internal import PEMISStore

/// Retention (issue 13, item 6; CAC Order No. 4: deletion when use ends). Children who left more
/// than `retentionYears` ago keep their record number, name, gender, dates, state and
/// kindergarten; their guardians' contacts, health and household details are scrubbed, from the
/// record and its history. The server runs it once a day; `pemis-server retention scrub` runs it
/// now. Each kindergarten's scrub is audited: a STARTED entry before (no scrub without its
/// entry), then the children scrubbed, by reference.
extension Tenancy {
  static let retentionActor = "system:retention"

  /// The first day a child must have left by to be kept whole: `years` before today.
  static func retentionCutoff(today: CalendarDate, years: Int) -> CalendarDate { today.addingYears(-years) }

  /// Scrubs every kindergarten's children who left before the cutoff. Returns how many
  /// children were scrubbed in how many kindergartens.
  public func scrubRetention(years: Int) async throws -> (children: Int, kindergartens: Int) {
    let cutoff = Self.retentionCutoff(today: today, years: years)
    let (kindergartens, _) = try await registry.kindergartens(ownership: nil, offset: 0, limit: Int.max)
    var children = 0
    var touched = 0
    for kindergarten in kindergartens {
      let code = try InstitutionCode(validating: kindergarten.code)
      let shard = try await shards.shard(code)
      var entry = AuditRecord(
        atMs: now() * 1000, username: Self.retentionActor, role: "system", kindergartenCode: code.rawValue,
        method: "retention scrub", targets: ["kindergarten:\(code.rawValue)", "left before \(cutoff)"],
        result: AuditRecord.startedResult, peer: "")
      // Only a kindergarten with someone to scrub gets entries: a daily run over a district
      // writes nothing where nothing is due.
      guard try await shard.hasChildrenToScrub(leftBefore: cutoff) else { continue }
      try await registry.appendAudit(entry)
      let scrubbed = try await shard.scrubChildren(leftBefore: cutoff, by: Self.retentionActor, at: now())
      // The children by reference, in entries that stay within the log's bounds.
      var chunks = stride(from: 0, to: scrubbed.count, by: 100).map { Array(scrubbed[$0..<min($0 + 100, scrubbed.count)]) }
      if chunks.isEmpty { chunks = [[]] }
      for chunk in chunks {
        entry.result = "OK"
        entry.atMs = now() * 1000
        entry.targets = (["kindergarten:\(code.rawValue)", "personal-data:guardians+health+household removed"]
          + chunk.map { "child:" + registry.childReferences.reference($0) }).joined(separator: ",")
        try await registry.appendAudit(entry)
      }
      children += scrubbed.count
      if !scrubbed.isEmpty { touched += 1 }
    }
    if children > 0 { logger.info("retention: scrubbed \(children) children who left before \(cutoff) in \(touched) kindergartens") }
    return (children, touched)
  }

  /// Once a day (the server's minute loop asks): the scrub, if it has not run today.
  func scrubRetentionIfDue(years: Int) async {
    let day = today.description
    do {
      guard try await registry.meta("retentionScrubbedOn") != day else { return }
      _ = try await scrubRetention(years: years)
      try await registry.setMeta("retentionScrubbedOn", day)
    } catch {
      logger.error("retention scrub failed; it runs again in a minute", metadata: ["error": "\(error)"])
    }
  }
}
