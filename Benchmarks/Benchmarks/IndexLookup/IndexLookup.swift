import Benchmark
import Foundation
import PEMISDomain
import PEMISStore
import Synchronization

/// A registry whose district child index holds `count` children (as `seed-district` writes
/// them), made in setup and removed in teardown: the lookups the routing layer makes on every
/// enrollment (by ID document) and transfer (by record number).
final class Index: Sendable {
  static let count = 100_000
  let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-bench-index-\(UUID())").path
  let registry: Registry
  let next = Atomic<Int>(0)

  init() { registry = try! Registry(directory: directory) }

  static func child(_ i: Int) -> (recordNumber: String, record: ChildRecord) {
    let birth = CalendarDate(dayNumber: CalendarDate(year: 2020, month: 9, day: 1).dayNumber + (i / 1000) % 1460)
    let body = "120116" + String(format: "%04d%02d%02d%03d", birth.year, birth.month, birth.day, i % 1000)
    let id = body + String(IDDocuments.checkCharacter(Array(body))!)
    let record = ChildRecord(
      name: "儿童\(i)", gender: i % 2 == 1 ? .male : .female, birthDate: birth, idDocumentType: .residentID, idDocumentNumber: id,
      nationality: "CHN", ethnicity: "01", birthPlace: "120116", householdRegister: "120116", householdType: "resident", hmtStatus: "none",
      health: "healthy", onlyChild: false, guardians: [.init(name: "家长", relation: "father", phone: "13800138000")],
      entryDate: CalendarDate(year: 2026, month: 9, day: 1))
    return ("G" + id, record)
  }

  func fill() async throws {
    var rows: [ChildIndexRecord] = []
    for i in 0..<Self.count {
      let c = Self.child(i)
      rows.append(ChildIndexRecord(recordNumber: c.recordNumber, kindergartenCode: "11\(String(format: "%08d", i / 300 + 1))", state: .enrolled, child: c.record, updatedAt: 0))
      if rows.count == 10_000 {
        try await registry.syncIndex(rows)
        rows = []
      }
    }
    try await registry.syncIndex(rows)
  }

  func remove() { try? FileManager.default.removeItem(atPath: directory) }

  /// A child in turn, spread over the whole index.
  func nextChild() -> (recordNumber: String, record: ChildRecord) {
    Self.child((next.add(7919, ordering: .relaxed).newValue) % Self.count)
  }
}

let index = Index()

let benchmarks: @Sendable () -> Void = {
  Benchmark.defaultConfiguration = .init(
    metrics: [.wallClock, .throughput, .mallocCountTotal], scalingFactor: .one, maxDuration: .seconds(3), maxIterations: 20_000)
  Benchmark.setup = { try await index.fill() }
  Benchmark.teardown = { index.remove() }

  Benchmark("Index lookup: by record number, 100,000 children indexed") { benchmark in
    for _ in benchmark.scaledIterations { blackHole(try await index.registry.indexRecord(index.nextChild().recordNumber)) }
  }

  Benchmark("Index lookup: the duplicate check, by ID document, 100,000 children indexed") { benchmark in
    for _ in benchmark.scaledIterations {
      let child = index.nextChild().record
      blackHole(try await index.registry.activeRecord(documentKey: ChildIndexRecord.documentKey(child)!))
    }
  }
}
