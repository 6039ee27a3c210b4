import Foundation
import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISWire
import SwiftProtobuf
import Testing

@testable import PEMISServer
@testable import PEMISStore

/// Issue 13, item 5 (Art. 20): no children's data leaves without the next higher authority's
/// written approval; what leaves is de-identified except the fields approved one by one.
@Suite("Exports with approval")
struct ExportTests {
  func exports<R: Sendable>(
    _ district: District, _ user: String, _ body: (Pemis_V1_Exports.Client<PEMISWireClientTransport>) async throws -> R
  ) async throws -> R {
    try await district.asUser(user) { try await body(Pemis_V1_Exports.Client(wrapping: $0)) }
  }

  /// Reads CSV with Python's csv module (a reader nobody here wrote); returns its rows.
  static func pythonCSV(_ data: Data) async throws -> [[String]] {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-export-\(UUID()).csv")
    try data.write(to: file)
    defer { try? FileManager.default.removeItem(at: file) }
    let script = "import csv,json,sys\nwith open(sys.argv[1], newline='', encoding='utf-8-sig') as f: print(json.dumps(list(csv.reader(f))))"
    let output = try await run(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, file.path])
    #expect(output.status == 0, "\(output.stderr)")
    return try JSONDecoder().decode([[String]].self, from: Data(output.stdout.utf8))
  }

  @Test("a kindergarten's export: approved by its office, field by field, produced once, downloaded by the requester for a week, de-identified")
  func kindergartenExport() async throws {
    try await withDistrict { district in
      let principal = District.user(.principal)
      let office = District.user(.preschoolOffice)
      _ = try await district.asUser(District.user(.administrator)) {
        try await Pemis_V1_ChildRecords.Client(wrapping: $0).enrollChild(.with { $0.child = KindergartenDataFixtures.child() })
      }
      let requested = try await exports(district, principal) {
        try await $0.requestExport(.with {
          $0.purpose = "向街道办提供在园幼儿名单，用于疫苗接种通知"
          $0.recipient = "新港街道社区卫生服务中心 王医生"
          $0.fields = ["name", "gender", "birth_date", "id_document", "guardians", "class"]
          $0.fullFields = ["name", "guardians"]
        })
      }
      #expect(requested.state == "requested" && requested.id.hasPrefix("E"))
      // Not the Vocational Office (A is public), not the district's approver (it is A's own
      // request), not the requester.
      for role in [Role.vocationalOffice, .exportApprover] {
        let wrong = await failure {
          _ = try await exports(district, District.user(role)) {
            try await $0.decideExport(.with {
              $0.id = requested.id
              $0.approve = true
            })
          }
        }
        #expect(wrong?.code == .permissionDenied, "\(role)")
      }
      let notAsked = await failure {
        _ = try await exports(district, office) {
          try await $0.decideExport(.with {
            $0.id = requested.id
            $0.approve = true
            $0.fullFields = ["health"]
          })
        }
      }
      #expect(notAsked?.message == "full_fields: health was not asked for in full")
      // Not yet approved: nothing to download.
      let early = await failure { _ = try await exports(district, principal) { try await $0.downloadExport(.with { $0.id = requested.id }) } }
      #expect(early?.code == .failedPrecondition)
      // The office approves the name in full, not the guardians.
      let approved = try await exports(district, office) {
        try await $0.decideExport(.with {
          $0.id = requested.id
          $0.approve = true
          $0.fullFields = ["name"]
          $0.note = "仅限疫苗接种通知使用，不得转交"
        })
      }
      #expect(approved.state == "approved" && approved.decidedBy == office && approved.fullFieldsApproved == ["name"])
      #expect(approved.rows == 1 && approved.sha256.count == 64)
      let twice = await failure {
        _ = try await exports(district, office) { try await $0.decideExport(.with { $0.id = requested.id; $0.approve = true }) }
      }
      #expect(twice?.code == .failedPrecondition, "decided once")
      // Two decisions at once on a fresh request: exactly one is taken, the other is refused.
      let raced = try await exports(district, principal) {
        try await $0.requestExport(.with {
          $0.purpose = "核对"
          $0.recipient = "区教育局"
          $0.fields = ["gender"]
        })
      }
      let outcomes = await withTaskGroup(of: RPCError?.self) { group in
        for approve in [true, false] {
          group.addTask {
            await failure {
              _ = try await exports(district, office) {
                try await $0.decideExport(.with {
                  $0.id = raced.id
                  $0.approve = approve
                  $0.note = "并发"
                })
              }
            }
          }
        }
        return await group.reduce(into: []) { $0.append($1) }
      }
      #expect(outcomes.filter { $0 == nil }.count == 1)
      #expect(outcomes.compactMap { $0?.code } == [.failedPrecondition])
      // Only the requester downloads.
      let other = await failure {
        _ = try await exports(district, District.user(.administrator)) { try await $0.downloadExport(.with { $0.id = requested.id }) }
      }
      #expect(other?.code == .permissionDenied)
      let file = try await exports(district, principal) { try await $0.downloadExport(.with { $0.id = requested.id }) }
      #expect(file.fileName == "\(requested.id).csv")
      #expect(file.export.downloads == 1)
      let rows = try await Self.pythonCSV(file.content)
      #expect(rows.first == ["pseudonym", "kindergarten", "name", "gender", "age", "id_document", "guardians", "class"])
      let row = try #require(rows.dropFirst().first)
      #expect(row[2] == "张小明", "approved in full")
      #expect(row[4] == "4", "an age, not the birth date (born 2022-03-15, today 2026-09-21)")
      #expect(row[5] == "resident_id " + IDDocuments.mask(KindergartenDataFixtures.childID))
      #expect(row[6] == "", "guardians were not approved")
      let text = String(decoding: file.content, as: UTF8.self)
      #expect(!text.contains(KindergartenDataFixtures.childID) && !text.contains("2022-03-15"))
      // Logged with the approver's name and the file's hash.
      let entries = try await district.auditEntries(after: 0).filter { $0.method.hasSuffix("DownloadExport") && $0.result == "OK" }
      #expect(entries.last?.targets.contains("approved by \(office)") == true)
      #expect(entries.last?.targets.contains("sha256:\(approved.sha256)") == true)
      // A week later it is gone.
      district.clock.advance(8 * 86400)
      let late = await failure { _ = try await exports(district, principal) { try await $0.downloadExport(.with { $0.id = requested.id }) } }
      #expect(late?.code == .failedPrecondition)
      let listed = try await exports(district, principal) { try await $0.listExports(.init()) }
      #expect(listed.exports.first { $0.id == requested.id }?.state == "expired")
      let stored = try #require(try await district.registry.exportRequest(requested.id))
      #expect(stored.file == nil, "the file is removed when the export expires")
    }
  }

  @Test("a district export is decided by the district's export approver; a rejection says why")
  func districtExport() async throws {
    try await withDistrict { district in
      let office = District.user(.preschoolOffice)
      let requested = try await exports(district, office) {
        try await $0.requestExport(.with {
          $0.purpose = "市教委学前教育统计抽样"
          $0.recipient = "天津市教委基教处"
          $0.fields = ["gender", "birth_date", "state"]
        })
      }
      #expect(requested.kindergartenCode.isEmpty)
      let own = await failure {
        _ = try await exports(district, office) { try await $0.decideExport(.with { $0.id = requested.id; $0.approve = true }) }
      }
      #expect(own?.code == .permissionDenied)
      #expect(own?.message.contains("export_approver") == true)
      let approver = District.user(.exportApprover)
      let noReason = await failure {
        _ = try await exports(district, approver) { try await $0.decideExport(.with { $0.id = requested.id; $0.approve = false }) }
      }
      #expect(noReason?.message == "note: a rejection says why")
      let rejected = try await exports(district, approver) {
        try await $0.decideExport(.with {
          $0.id = requested.id
          $0.approve = false
          $0.note = "抽样不需要个人记录，请使用区级汇总"
        })
      }
      #expect(rejected.state == "rejected" && rejected.decidedByRole == .exportApprover)
      // The approver decides exports and reads nothing else.
      let children = await failure {
        _ = try await district.asUser(approver) {
          try await Pemis_V1_ChildRecords.Client(wrapping: $0).listChildren(.with { $0.kindergartenCode = District.kindergartenA })
        }
      }
      #expect(children?.code == .permissionDenied)
      // A kindergarten sees its own requests only.
      let seen = try await exports(district, District.user(.principal)) { try await $0.listExports(.init()) }
      #expect(seen.exports.isEmpty)
    }
  }

  @Test("an export of 300 children: produced and read back by Python's csv module", .timeLimit(.minutes(2)))
  func threeHundred() async throws {
    try await withDistrict { district in
      let shard = try await district.server.tenancy.shards.shard(try InstitutionCode(validating: District.kindergartenA))
      for i in 0..<300 {
        let body = "120116" + "2021" + String(format: "%02d", 1 + i % 12) + String(format: "%02d", 1 + i % 28) + String(format: "%03d", i)
        let id = body + String(IDDocuments.checkCharacter(Array(body))!)
        var child = try ChildRecordsService.domain(KindergartenDataFixtures.child(id: id))
        child.gender = (i % 2 == 1) ? .male : .female
        child.name = "儿童\(i)"
        _ = try await shard.enroll(child, recordNumber: "G" + id, classId: nil, by: "seed", at: district.clock.now)
      }
      let principal = District.user(.principal)
      let requested = try await exports(district, principal) {
        try await $0.requestExport(.with {
          $0.purpose = "年度体检名单"
          $0.recipient = "区妇幼保健院"
          $0.fields = ExportField.allCases.map(\.rawValue)
        })
      }
      let started = ContinuousClock.now
      _ = try await exports(district, District.user(.preschoolOffice)) { try await $0.decideExport(.with { $0.id = requested.id; $0.approve = true }) }
      let file = try await exports(district, principal) { try await $0.downloadExport(.with { $0.id = requested.id }) }
      let elapsed = ContinuousClock.now - started
      let rows = try await Self.pythonCSV(file.content)
      #expect(rows.count == 301)
      #expect(Set(rows.dropFirst().map { $0[0] }).count == 300, "a pseudonym per child")
      // Not the references lists show: the file cannot be joined back to them.
      let references = Set(try await shard.children(classId: nil, classes: nil, offset: 0, limit: 500).children.map {
        district.registry.childReferences.reference($0.recordNumber)
      })
      #expect(references.isDisjoint(with: rows.dropFirst().map { $0[0] }))
      // De-identified by default: no full ID, no birth date, no contact, no health.
      let text = String(decoding: file.content, as: UTF8.self)
      #expect(!text.contains("120116202101"), "no full ID number")
      let header = try #require(rows.first)
      let health = try #require(header.firstIndex(of: "health"))
      let guardians = try #require(header.firstIndex(of: "guardians"))
      #expect(rows.dropFirst().allSatisfy { $0[health].isEmpty && $0[guardians].isEmpty })
      print("export figure: 300 children, all fields, approve + produce + download in \(elapsed), \(file.content.count) bytes")
    }
  }
}
