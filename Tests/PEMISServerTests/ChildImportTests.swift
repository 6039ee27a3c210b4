import Foundation
import GRDB
import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
@testable import PEMISStore
import PEMISWire
import SwiftProtobuf
import Testing

@testable import PEMISServer

/// Batch import of the child template over the streaming RPC, against a real server.
@Suite("Child import")
struct ChildImportTests {
  let admin = District.user(.administrator)

  /// A resident ID with its check character.
  static func id(_ body: String) -> String { body + String(IDDocuments.checkCharacter(Array(body))!) }

  static let header = "姓名,性别,出生日期,身份证件类型,身份证件号,户口所在地,出生地,监护人1姓名,监护人1关系,监护人1电话,入园日期,班级"
  static func row(_ name: String, _ gender: String, _ born: String, _ type: String, _ number: String, classId: String = "") -> String {
    "\(name),\(gender),\(born),\(type),\(number),120116,120116,家长,父亲,13800138000,2026-09-01,\(classId)"
  }
  static let valid = [
    header,
    row("李思涵", "女", "2022-05-20", "1", id("12011620220520122")),
    row("陈浩宇", "男", "20220108", "1", id("12010120220108125")),
    // A passport holder gets a J number.
    row("Sophie Martin", "2", "2022/7/14", "A", "E12345678"),
  ].joined(separator: "\r\n") + "\r\n"

  struct Outcome {
    var events: [Pemis_V1_ImportChildrenEvent] = []
    var error: RPCError?
    var result: Pemis_V1_ImportResult? {
      events.compactMap { if case .result(let r) = $0.event { r } else { nil } }.first
    }
    var failures: [Pemis_V1_ImportFailure] {
      events.compactMap { if case .failure(let f) = $0.event { f } else { nil } }
    }
  }

  func importFile(
    _ district: District, _ bytes: [UInt8], user: String? = nil, kindergarten: String = "", encoding: String = "", dryRun: Bool = false,
    chunk: Int = 7
  ) async throws -> Outcome {
    try await district.asUser(user ?? admin) { client in
      do {
        return try await Pemis_V1_ChildRecords.Client(wrapping: client).importChildren(
          requestProducer: { writer in
            // Small chunks, so the file is reassembled from many messages.
            var offset = 0
            repeat {
              let end = min(offset + chunk, bytes.count)
              try await writer.write(.with {
                if offset == 0 {
                  $0.kindergartenCode = kindergarten
                  $0.encoding = encoding
                  $0.dryRun = dryRun
                }
                $0.chunk = Data(bytes[offset..<end])
              })
              offset = end
            } while offset < bytes.count
          },
          onResponse: { response in
            var outcome = Outcome()
            do {
              for try await event in response.messages { outcome.events.append(event) }
            } catch let error as RPCError {
              outcome.error = error
            }
            return outcome
          })
      } catch let error as RPCError {
        return Outcome(error: error)
      }
    }
  }

  func shardState(_ district: District) async throws -> String {
    let shard = try await district.server.tenancy.shards.shard(try InstitutionCode(validating: District.kindergartenA))
    let children = try await shard.children(classId: nil, classes: nil, offset: 0, limit: 10_000)
    let obligations = try await district.registry.obligations(
      kindergarten: District.kindergartenA, filter: .all, today: CalendarDate(beijingTimeOf: district.clock.now), offset: 0, limit: 10_000)
    let sequences = try district.registry.writer.read { db in try Row.fetchAll(db, sql: "SELECT * FROM record_number_sequence") }
    return "\(children.children.map(\.recordNumber)) \(obligations.total) \(sequences)"
  }

  @Test("a valid file is imported whole; importing it again creates no duplicates")
  func importTwice() async throws {
    try await withDistrict { district in
      let classId = try await KindergartenDataFixtures.seedClass(District.kindergartenA)(district)
      let file = Self.valid.replacingOccurrences(of: ",2026-09-01,\r", with: ",2026-09-01,\(classId)\r")
      let first = try await importFile(district, Array(file.utf8))
      #expect(first.error == nil)
      #expect(first.result?.rows == 3)
      #expect(first.result?.created == 3)
      #expect(first.events.contains { if case .progress(let p) = $0.event { p.phase == "validated" && p.done == 3 } else { false } })
      let listed = try await district.asUser(admin) { try await Pemis_V1_ChildRecords.Client(wrapping: $0).listChildren(.init()) }
      #expect(listed.children.count == 3)
      #expect(listed.children.allSatisfy { $0.classID == classId })
      #expect(listed.children.filter { $0.recordNumber.hasPrefix("J") }.count == 1)
      #expect(Set(listed.children.map(\.gender)) == ["male", "female"])
      // Each child's entry is its Art. 15(3) report.
      let done = try await district.registry.obligations(
        kindergarten: District.kindergartenA, filter: .done, today: CalendarDate(beijingTimeOf: district.clock.now), offset: 0, limit: 50)
      #expect(done.obligations.filter { $0.kind == .enrollment }.count == 3)

      let state = try await shardState(district)
      let second = try await importFile(district, Array(file.utf8), chunk: 4096)
      #expect(second.error == nil)
      #expect(second.result?.created == 0)
      #expect(second.result?.unchanged == 3)
      #expect(try await shardState(district) == state)
    }
  }

  @Test("any failing row: nothing is imported, and every failing row and field is reported")
  func allOrNothing() async throws {
    try await withDistrict { district in
      let file = [
        Self.header,
        Self.row("李思涵", "女", "2022-05-20", "1", Self.id("12011620220520122")),
        // Check character wrong, and an unknown class.
        Self.row("陈浩宇", "男", "2022-01-08", "1", "120101202201081255", classId: "C0099"),
        // Gender not a gender; relation fine.
        Self.row("王五", "x", "2022-01-08", "1", Self.id("12010120220108127")),
        // The same child as row 1.
        Self.row("李思涵", "女", "2022-05-20", "1", Self.id("12011620220520122")),
        // Too few values.
        "赵六,男,2022-01-01",
        // An ID that disagrees with the gender, and a birth date in the future.
        Self.row("孙七", "女", "2030-01-01", "1", Self.id("12010120220108129")),
      ].joined(separator: "\n")
      let before = try await shardState(district)
      let outcome = try await importFile(district, Array(file.utf8))
      #expect(outcome.error?.code == .invalidArgument)
      #expect(outcome.error?.message == "file: 5 of 6 rows fail (8 problems); nothing was imported", "\(outcome.failures.map { "\($0.row) \($0.field) \($0.message)" })")
      let failures = outcome.failures.map { "\($0.row) \($0.field)" }
      #expect(failures.contains("2 id_document_number"))
      #expect(failures.contains("2 class_id"))
      #expect(failures.contains("3 gender"))
      #expect(failures.contains("4 id_document_number"))
      #expect(outcome.failures.first { $0.row == 4 }?.message == "the same child as row 1")
      #expect(failures.contains("5 row"))
      #expect(failures.contains("6 birth_date"))
      #expect(outcome.failures.count == 8, "\(outcome.failures)")
      #expect(try await shardState(district) == before)
      // The import is in the audit log with its outcome.
      let (entries, _) = try await district.registry.auditEntries(.init(username: admin), offset: 0, limit: 100)
      #expect(entries.contains { $0.method == "/pemis.v1.ChildRecords/ImportChildren" && $0.result == "INVALID_ARGUMENT" })
    }
  }

  @Test("a row that names an enrolled child with different information is refused, naming the fields")
  func conflict() async throws {
    try await withDistrict { district in
      _ = try await importFile(district, Array(Self.valid.utf8))
      let changed = Self.valid.replacingOccurrences(of: "李思涵", with: "李思含")
      let outcome = try await importFile(district, Array(changed.utf8))
      #expect(outcome.error?.code == .invalidArgument)
      #expect(outcome.failures.count == 1)
      #expect(outcome.failures.first?.field == "name")
      #expect(outcome.failures.first?.message.hasPrefix("already enrolled here as G12*") == true)
    }
  }

  @Test("GB18030 files, detected or named; a dry run applies nothing; file-level problems")
  func encodingsAndDryRun() async throws {
    try await withDistrict { district in
      let gb = try Self.gb18030(Self.valid)
      #expect(String(validating: gb, as: UTF8.self) == nil, "the test file really is not UTF-8")
      let dry = try await importFile(district, gb, dryRun: true)
      #expect(dry.error == nil)
      #expect(dry.result?.dryRun == true)
      #expect(dry.result?.created == 0)
      let none = try await district.asUser(admin) { try await Pemis_V1_ChildRecords.Client(wrapping: $0).listChildren(.init()) }
      #expect(none.children.isEmpty)
      let named = try await importFile(district, gb, encoding: "gb18030")
      #expect(named.result?.created == 3)
      let names = try await district.asUser(admin) { try await Pemis_V1_ChildRecords.Client(wrapping: $0).listChildren(.init()) }
      #expect(Set(names.children.map(\.name)) == ["李思涵", "陈浩宇", "Sophie Martin"])

      let asUTF8 = try await importFile(district, gb, encoding: "utf-8")
      #expect(asUTF8.error?.message.hasPrefix("encoding: the file is not valid UTF-8") == true)
      let missing = try await importFile(district, Array("姓名,性别\n张三,男\n".utf8))
      #expect(missing.error?.code == .invalidArgument)
      #expect(missing.error?.message.hasPrefix("file: missing columns: birth_date, id_document_type") == true)
      let unknown = try await importFile(district, Array((Self.header + ",备注\n").utf8))
      #expect(unknown.error?.message.hasPrefix("file: unknown column '备注' (column 13)") == true)
      let empty = try await importFile(district, Array((Self.header + "\n\n").utf8))
      #expect(empty.error?.message == "file: no data rows after the header")
      let otherKindergarten = try await importFile(district, Array(Self.valid.utf8), kindergarten: District.kindergartenB)
      #expect(otherKindergarten.error?.code == .permissionDenied)
    }
  }

  /// The text in GB18030, through the system's iconv program.
  static func gb18030(_ text: String) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/iconv")
    process.arguments = ["-f", "UTF-8", "-t", "GB18030"]
    let input = Pipe()
    let output = Pipe()
    process.standardInput = input
    process.standardOutput = output
    try process.run()
    input.fileHandleForWriting.write(Data(text.utf8))
    try input.fileHandleForWriting.close()
    let bytes = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return Array(bytes)
  }
}
