import GRPCCore
import PEMISClient
import PEMISDomain
import PEMISProto
import PEMISWire
import SwiftProtobuf
import Testing

@testable import PEMISServer
import PEMISStore

@Suite("Child records")
struct ChildRecordsTests {
  func children<R: Sendable>(
    _ district: District, _ user: String, _ body: (Pemis_V1_ChildRecords.Client<PEMISWireClientTransport>) async throws -> R
  ) async throws -> R {
    try await district.asUser(user) { try await body(Pemis_V1_ChildRecords.Client(wrapping: $0)) }
  }

  @Test("enrollment: G number for life, masked in lists, full only for the roles that may see it")
  func enroll() async throws {
    try await withDistrict { district in
      let admin = District.user(.administrator)
      let child = try await children(district, admin) { try await $0.enrollChild(.with { $0.child = KindergartenDataFixtures.child() }) }
      #expect(child.state == "enrolled")
      #expect(child.idDocumentNumber == IDDocuments.mask(KindergartenDataFixtures.childID))
      let number = "G" + KindergartenDataFixtures.childID
      let again = await failure { _ = try await children(district, admin) { try await $0.enrollChild(.with { $0.child = KindergartenDataFixtures.child() }) } }
      #expect(again?.code == .alreadyExists)

      let listed = try await children(district, District.user(.preschoolOffice)) {
        try await $0.listChildren(.with { $0.kindergartenCode = District.kindergartenA })
      }
      #expect(listed.children.map(\.idDocumentNumber) == [IDDocuments.mask(KindergartenDataFixtures.childID)])
      // Lists carry who and where, never contacts or health (PIPL Art. 51).
      #expect(listed.children.allSatisfy { $0.guardians.isEmpty && $0.health.isEmpty && $0.householdRegister.isEmpty })
      let reference = try #require(listed.children.first?.childRef)
      #expect(reference.hasPrefix("C-") && reference.count == 12)
      let full = try await children(district, District.user(.principal)) { try await $0.getChild(.with { $0.recordNumber = number }) }
      #expect(full.idDocumentNumber == KindergartenDataFixtures.childID)
      #expect(full.recordNumber == number)
      #expect(!full.guardians.isEmpty && !full.health.isEmpty)
      // The reference a list shows opens the same child.
      let byReference = try await children(district, District.user(.principal)) { try await $0.getChild(.with { $0.recordNumber = reference }) }
      #expect(byReference.recordNumber == number)
      // The Preschool Education Office verifies identities: the number, not the contacts.
      let office = try await children(district, District.user(.preschoolOffice)) {
        try await $0.getChild(.with {
          $0.kindergartenCode = District.kindergartenA
          $0.recordNumber = reference
        })
      }
      #expect(office.idDocumentNumber == KindergartenDataFixtures.childID)
      #expect(office.guardians.isEmpty && office.health.isEmpty && office.householdRegister.isEmpty)
      // Finance/HR staff and the Planning & Finance Office read no child (Art. 12(三)2).
      for role in [Role.financeStaff, .financeOffice, .planningOffice, .districtAdmin] {
        let refused = await failure {
          _ = try await children(district, District.user(role)) {
            try await $0.getChild(.with {
              $0.kindergartenCode = District.kindergartenA
              $0.recordNumber = number
            })
          }
        }
        #expect(refused?.code == .permissionDenied, "\(role)")
      }
      // The full-number read is in the audit log as a personal-data access: who, whose (the
      // reference, never the number), which fields.
      let (entries, _) = try await district.registry.auditEntries(.init(username: District.user(.principal)), offset: 0, limit: 100)
      let reads = entries.filter { $0.method == "/pemis.v1.ChildRecords/GetChild" }
      #expect(reads.contains { $0.targets.contains("child:\(reference)") && $0.targets.contains("personal-data:id_document_number+household+health+guardians") })
      #expect(reads.allSatisfy { !$0.targets.contains(KindergartenDataFixtures.childID) })
      // Entering it discharged the enrollment obligation (Art. 15(3)).
      let done = try await district.registry.obligations(
        kindergarten: District.kindergartenA, filter: .done, today: CalendarDate(beijingTimeOf: district.clock.now), offset: 0, limit: 50)
      #expect(done.obligations.contains { $0.kind == .enrollment && $0.subject == "child:\(reference)" })
    }
  }

  @Test("every broken field is named; nothing is stored")
  func invalid() async throws {
    try await withDistrict { district in
      var child = KindergartenDataFixtures.child(id: "120116202203151230")
      child.householdRegister = "12"
      child.guardians = []
      let error = await failure {
        _ = try await children(district, District.user(.administrator)) { try await $0.enrollChild(.with { $0.child = child }) }
      }
      #expect(error?.code == .invalidArgument)
      #expect(error?.message.contains("child.id_document_number: check character does not match") == true)
      #expect(error?.message.contains("child.household_register: must be a six-digit administrative-division code") == true)
      #expect(error?.message.contains("child.guardians: one to four guardians") == true)
      let listed = try await children(district, District.user(.administrator)) { try await $0.listChildren(.init()) }
      #expect(listed.children.isEmpty)
    }
  }

  @Test("a child without an ID gets a J number, unique across the district")
  func jNumbers() async throws {
    try await withDistrict { district in
      var numbers: [String] = []
      for (code, user) in [(District.kindergartenA, District.user(.principal)), (District.kindergartenB, District.user(.principal, kindergarten: District.kindergartenB))] {
        _ = code
        let enrolled = try await children(district, user) {
          try await $0.enrollChild(.with { $0.child = KindergartenDataFixtures.child(id: "", type: "other") })
        }
        numbers.append(enrolled.recordNumber)
      }
      #expect(Set(numbers).count == 2, "masked numbers differ because the sequences differ: \(numbers)")
      let listed = try await children(district, District.user(.principal)) { try await $0.listChildren(.init()) }
      #expect(listed.children.first?.recordNumber.hasPrefix("J12*") == true)
    }
  }

  @Test("classes first: a child goes only into an existing class, and a class with children cannot be deleted")
  func classesFirst() async throws {
    try await withDistrict { district in
      let admin = District.user(.administrator)
      let number = "G" + KindergartenDataFixtures.childID
      let midTerm = await failure {
        _ = try await children(district, admin) {
          try await $0.enrollChild(.with {
            $0.child = KindergartenDataFixtures.child()
            $0.midTerm = true
          })
        }
      }
      #expect(midTerm?.message == "class_id: a mid-term joiner joins a class; name it")
      let noClass = await failure {
        _ = try await children(district, admin) {
          try await $0.enrollChild(.with {
            $0.child = KindergartenDataFixtures.child()
            $0.classID = "C0042"
          })
        }
      }
      #expect(noClass?.code == .failedPrecondition)
      #expect(noClass?.message == "class_id: no class C0042; create the class first (Art. 15(6))")
      _ = try await children(district, admin) { try await $0.enrollChild(.with { $0.child = KindergartenDataFixtures.child() }) }
      let created = try await district.asUser(admin) { client in
        try await Pemis_V1_KindergartenData.Client(wrapping: client).createClass(.with { $0.class = KindergartenDataFixtures.newClass("小一班") })
      }
      let placed = try await children(district, admin) {
        try await $0.assignClass(.with {
          $0.recordNumber = number
          $0.classID = created.class.classID
        })
      }
      #expect(placed.classID == created.class.classID)
      let delete = await failure {
        _ = try await district.asUser(admin) { client in
          try await Pemis_V1_KindergartenData.Client(wrapping: client).deleteClass(.with { $0.classID = created.class.classID })
        }
      }
      #expect(delete?.code == .failedPrecondition)
      #expect(delete?.message == "class_id: C0001 still holds 1 children; move them first")
    }
  }

  @Test("a class leader sees and enrolls only into their own classes")
  func classLeaderScope() async throws {
    try await withDistrict { district in
      let admin = District.user(.administrator)
      for name in ["小一班", "小二班"] {
        _ = try await district.asUser(admin) { client in
          try await Pemis_V1_KindergartenData.Client(wrapping: client).createClass(.with { $0.class = KindergartenDataFixtures.newClass(name) })
        }
      }
      try await district.registry.updateAccount(District.user(.classLeader)) { $0.classes = ["C0001"] }
      let leader = District.user(.classLeader)
      let wrong = await failure {
        _ = try await children(district, leader) {
          try await $0.enrollChild(.with {
            $0.child = KindergartenDataFixtures.child()
            $0.classID = "C0002"
          })
        }
      }
      #expect(wrong?.code == .permissionDenied)
      _ = try await children(district, leader) {
        try await $0.enrollChild(.with {
          $0.child = KindergartenDataFixtures.child()
          $0.classID = "C0001"
        })
      }
      var other = KindergartenDataFixtures.child(id: "", type: "other")
      other.name = "李小红"
      _ = try await children(district, admin) {
        try await $0.enrollChild(.with {
          $0.child = other
          $0.classID = "C0002"
        })
      }
      let seen = try await children(district, leader) { try await $0.listChildren(.init()) }
      #expect(seen.children.map(\.name) == ["张小明"])
      let all = try await children(district, admin) { try await $0.listChildren(.init()) }.children
      #expect(all.count == 2)
      // The history method holds class leaders to their classes too (issue 13): another class's
      // child does not exist for them, by reference or by number; their own class's does.
      func history(_ record: String) async throws -> Pemis_V1_GetHistoryResponse {
        try await district.asUser(leader) { try await Pemis_V1_KindergartenData.Client(wrapping: $0).getHistory(.with { $0.record = record }) }
      }
      let otherChild = try #require(all.first { $0.name == "李小红" })
      let hidden = await failure { _ = try await history("child:" + otherChild.childRef) }
      #expect(hidden?.code == .notFound)
      let own = try #require(all.first { $0.name == "张小明" })
      #expect(try await history("child:" + own.childRef).entries.allSatisfy { $0.record == "child:" + own.childRef })
      #expect(try await !history("child:G" + KindergartenDataFixtures.childID).entries.isEmpty)
      // Finance/HR staff read no child history, and class leaders no finance history (Art. 12(三)).
      let staff = await failure {
        _ = try await district.asUser(District.user(.financeStaff)) {
          try await Pemis_V1_KindergartenData.Client(wrapping: $0).getHistory(.with { $0.record = "child:" + own.childRef })
        }
      }
      #expect(staff?.code == .permissionDenied)
      #expect(staff?.message.contains("Art. 12") == true)
      let finance = await failure { _ = try await history("finance:2026") }
      #expect(finance?.code == .permissionDenied)
    }
  }

  @Test("promotion with a preview first, graduation of large classes, leaving and accidental departure")
  func lifecycle() async throws {
    try await withDistrict { district in
      let admin = District.user(.administrator)
      let data = { (body: @Sendable (Pemis_V1_KindergartenData.Client<PEMISWireClientTransport>) async throws -> Pemis_V1_ClassResponse) in
        try await district.asUser(admin) { try await body(Pemis_V1_KindergartenData.Client(wrapping: $0)) }
      }
      let small = try await data { try await $0.createClass(.with { $0.class = KindergartenDataFixtures.newClass("小一班") }) }.class.classID
      let number = "G" + KindergartenDataFixtures.childID
      _ = try await children(district, admin) {
        try await $0.enrollChild(.with {
          $0.child = KindergartenDataFixtures.child()
          $0.classID = small
        })
      }
      let preview = try await children(district, admin) {
        try await $0.promoteClass(.with {
          $0.classID = small
          $0.preview = true
        })
      }
      #expect(preview.preview)
      #expect(preview.grade == "middle")
      #expect(preview.schoolYear == "2027-2028")
      #expect(preview.children.count == 1)
      // The preview wrote nothing.
      let still = try await district.asUser(admin) { try await Pemis_V1_KindergartenData.Client(wrapping: $0).listClasses(.init()) }
      #expect(still.classes.first?.grade == "small")
      _ = try await children(district, admin) { try await $0.promoteClass(.with { $0.classID = small }) }
      // Once a school year: the next promotion comes a year later (the account kept in use).
      district.clock.advance(175 * 86400)
      _ = try await district.login(admin)
      district.clock.advance(175 * 86400)
      _ = try await children(district, admin) { try await $0.promoteClass(.with { $0.classID = small }) }
      let large = await failure { _ = try await children(district, admin) { try await $0.promoteClass(.with { $0.classID = small }) } }
      #expect(large?.code == .failedPrecondition)
      #expect(large?.message == "class_id: a large class is not promoted; graduate it")
      let graduated = try await children(district, admin) { try await $0.graduateClass(.with { $0.classID = small }) }
      #expect(graduated.children.map(\.state) == ["graduated"])
      // A graduated child cannot leave, and the class can now be deleted.
      let leave = await failure {
        _ = try await children(district, admin) {
          try await $0.leaveChild(.with {
            $0.recordNumber = number
            $0.reason = "moved"
          })
        }
      }
      #expect(leave?.message == "child_id: cannot leave a child whose record is graduated")
      _ = try await district.asUser(admin) { try await Pemis_V1_KindergartenData.Client(wrapping: $0).deleteClass(.with { $0.classID = small }) }
      // Promotions are on the deadline record (Art. 15(5)).
      let obligations = try await district.registry.obligations(
        kindergarten: District.kindergartenA, filter: .done, today: CalendarDate(beijingTimeOf: district.clock.now), offset: 0, limit: 50)
      #expect(obligations.obligations.filter { $0.kind == .promotion }.count == 3)
    }
  }

  @Test("leaving needs a reason; an accidental departure needs evidence and closes the record")
  func endings() async throws {
    try await withDistrict { district in
      let admin = District.user(.administrator)
      let number = "G" + KindergartenDataFixtures.childID
      _ = try await children(district, admin) { try await $0.enrollChild(.with { $0.child = KindergartenDataFixtures.child() }) }
      let noReason = await failure { _ = try await children(district, admin) { try await $0.leaveChild(.with { $0.recordNumber = number }) } }
      #expect(noReason?.message.hasPrefix("reason:") == true)
      let noEvidence = await failure {
        _ = try await children(district, admin) {
          try await $0.recordAccidentalDeparture(.with {
            $0.recordNumber = number
            $0.kind = "injury"
          })
        }
      }
      #expect(noEvidence?.message.hasPrefix("evidence:") == true)
      let closed = try await children(district, admin) {
        try await $0.recordAccidentalDeparture(.with {
          $0.recordNumber = number
          $0.kind = "injury"
          $0.evidence = "滨海医院诊断证明 2026-123"
        })
      }
      #expect(closed.state == "closed")
      let history = try await district.asUser(admin) {
        try await Pemis_V1_KindergartenData.Client(wrapping: $0).getHistory(.with { $0.record = "child:\(number)" })
      }
      #expect(history.entries.contains { $0.field == "state" && $0.newValue.hasPrefix("closed: injury") })
    }
  }
}
