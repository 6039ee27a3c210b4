internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISRouting
internal import PEMISStore
internal import SwiftProtobuf

/// Batch import of the child template (docs/CHILDREN.md): the whole file is validated, then
/// applied in one shard transaction, or nothing is applied and every failing row and field is
/// reported. Re-importing the same rows finds the children they created and changes nothing.
extension ChildRecordsService {
  /// A file larger than this is refused: split it (the national template holds one
  /// kindergarten's children, far less).
  static let maxImportBytes = 32 * 1024 * 1024
  /// Rows validated between two progress events.
  static let importBatch = 1000

  typealias Event = Pemis_V1_ImportChildrenEvent

  static func progress(_ phase: String, _ done: Int, _ total: Int) -> Event {
    .with {
      $0.progress = .with {
        $0.phase = phase
        $0.done = Int64(done)
        $0.total = Int64(total)
      }
    }
  }

  func importChildren(
    request: RPCAsyncSequence<Pemis_V1_ImportChildrenRequest, any Error>, response: RPCWriter<Event>, context: ServerContext
  ) async throws {
    try await handling {
      var first: Pemis_V1_ImportChildrenRequest?
      var bytes: [UInt8] = []
      for try await message in request {
        if first == nil { first = message }
        guard bytes.count + message.chunk.count <= Self.maxImportBytes else {
          throw RPCError(code: .resourceExhausted, message: "chunk: the file is larger than \(Self.maxImportBytes / 1024 / 1024) MiB; split it")
        }
        bytes.append(contentsOf: message.chunk)
      }
      guard let first else { throw RPCError(code: .invalidArgument, message: "request: missing") }
      try await response.write(Self.progress("received", bytes.count, bytes.count))

      let (shard, caller) = try await tenancy.shard(for: first.kindergartenCode)
      var encoding: TextEncoding?
      if !first.encoding.isEmpty {
        encoding = TextEncoding(name: first.encoding)
        if encoding == nil { throw RPCError(code: .invalidArgument, message: "encoding: must be utf-8 or gb18030 (or empty to detect)") }
      }
      let text = try TextEncoding.decode(bytes, as: encoding).text
      bytes = []
      let today = tenancy.today

      // Every row is read and checked against the record's rules …
      let reader = try ChildTemplate.Reader(text)
      var rows: [ChildTemplate.Row] = []
      while let batch = reader.next(Self.importBatch, today: today) {
        rows += batch
        try await response.write(Self.progress("validated", rows.count, 0))
      }
      guard !rows.isEmpty else { throw RPCError(code: .invalidArgument, message: "file: no data rows after the header") }

      // … then against the shard: classes that exist, children already here.
      var failures: [(row: Int, error: DomainError)] = rows.flatMap { row in row.errors.map { (row.number, $0) } }
      let classes = Set(try await shard.classes().map(\.id))
      for row in rows {
        if let classId = row.classId, !classes.contains(classId) {
          failures.append((row.number, DomainError(field: "class_id", rule: "exists", "no class \(classId); create the class first (Art. 15(6))")))
        }
      }
      let valid = rows.compactMap { row in row.child.map { TenantShard.ImportRow(number: row.number, child: $0, classId: row.classId) } }
      let plan = try await shard.planImport(valid)
      failures += plan.failures
      if !failures.isEmpty { try await reportFailures(failures, rows: rows.count, response: response) }

      let new = zip(valid, plan.outcomes).filter { $0.1 == .new }.map(\.0)
      let unchanged = valid.count - new.count
      if !first.dryRun && !new.isEmpty {
        // Through the routing layer: the district index first (a child whose identity is taken
        // fails its row), then the shard, then the index and the Art. 15(3) reports together.
        let duplicates = try await tenancy.router.importChildren(new, in: shard, by: caller.username)
        if !duplicates.isEmpty {
          try await reportFailures(duplicates, rows: rows.count, response: response)
        }
        try await response.write(Self.progress("applied", new.count, new.count))
      }
      AuditTargets.add("import:\(shard.code) rows=\(rows.count) created=\(first.dryRun ? 0 : new.count)")
      try await response.write(
        .with {
          $0.result = .with {
            $0.rows = Int32(rows.count)
            $0.created = Int32(first.dryRun ? 0 : new.count)
            $0.unchanged = Int32(unchanged)
            $0.dryRun = first.dryRun
          }
        })
    }
  }

  /// Writes every failure, then ends the call: nothing was imported.
  private func reportFailures(_ failures: [(row: Int, error: DomainError)], rows: Int, response: RPCWriter<Event>) async throws -> Never {
    for failure in failures.sorted(by: { ($0.row, $0.error.field) < ($1.row, $1.error.field) }) {
      try await response.write(
        .with {
          $0.failure = .with {
            $0.row = Int32(failure.row)
            $0.field = failure.error.field
            $0.message = failure.error.message
          }
        })
    }
    let failingRows = Set(failures.map(\.row)).count
    throw RPCError(
      code: .invalidArgument, message: "file: \(failingRows) of \(rows) rows fail (\(failures.count) problems); nothing was imported")
  }
}
