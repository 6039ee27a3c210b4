import PEMISDomain
import PEMISProto
import PEMISStore
import SwiftProtobuf

@testable import PEMISServer

enum KindergartenDataFixtures {
  static let profile = Pemis_V1_Profile.with {
    $0.name = "滨海新区第一幼儿园"
    $0.address = "天津市滨海新区中心大道1号"
    $0.level = "level1"
    $0.licenceNumber = "教民112011号"
    $0.sponsor = "滨海新区教育体育局"
    $0.principalName = "王丽"
    $0.contactPhone = "022-66886688"
    $0.contactEmail = "office@example.cn"
    $0.buildingArea = 3200
    $0.outdoorArea = 2400
    $0.approvedCapacity = 270
  }

  static func newClass(_ name: String) -> Pemis_V1_Class {
    .with {
      $0.name = name
      $0.grade = "small"
      $0.schoolYear = "2026-2027"
      $0.capacity = 25
    }
  }

  /// A valid resident ID (MISSION's example): born 1988-06-01, female.
  static let teacher = Pemis_V1_StaffMember.with {
    $0.name = "刘芳"
    $0.idDocumentType = "resident_id"
    $0.idDocumentNumber = "120103198806018241"
    $0.gender = "female"
    $0.birthDate = .with { $0.year = 1988; $0.month = 6; $0.day = 1 }
    $0.post = "teacher"
    $0.qualification = "学前教育本科"
    $0.certificate = "幼儿园教师资格证"
    $0.hireDate = .with { $0.year = 2012; $0.month = 9; $0.day = 1 }
    $0.status = "active"
  }

  static let finance = Pemis_V1_FinanceYear.with {
    $0.year = 2026
    $0.income = [.with { $0.category = "tuition"; $0.fen = 180_000_000 }, .with { $0.category = "government_funding"; $0.fen = 250_000_000 }]
    $0.expenditure = [.with { $0.category = "salaries"; $0.fen = 300_000_000 }, .with { $0.category = "food"; $0.fen = 60_000_000 }]
    $0.subsidies = [.with { $0.category = "普惠性民办园补助"; $0.fen = 20_000_000 }]
  }

  static let leadership: [Pemis_V1_LeadershipMember] = [
    .with { $0.name = "王丽"; $0.role = "leader" },
    .with { $0.name = "赵敏"; $0.role = "administrator" },
    .with { $0.name = "刘芳"; $0.role = "class_leader"; $0.staffID = "S0001" },
  ]

  /// A boy born 2022-03-15 in Binhai, with a valid resident ID.
  static let childID: String = {
    let body = "12011620220315123"
    return body + String(IDDocuments.checkCharacter(Array(body))!)
  }()

  static func child(id: String = childID, type: String = "resident_id") -> Pemis_V1_Child {
    .with {
      $0.name = "张小明"
      $0.gender = "male"
      $0.birthDate = .with { $0.year = 2022; $0.month = 3; $0.day = 15 }
      $0.idDocumentType = type
      $0.idDocumentNumber = id
      $0.nationality = "CHN"
      $0.ethnicity = "01"
      $0.birthPlace = "120116"
      $0.householdRegister = "120116"
      $0.householdType = "resident"
      $0.hmtStatus = "none"
      $0.health = "healthy"
      $0.onlyChild = true
      $0.guardians = [.with { $0.name = "张伟"; $0.relation = "father"; $0.phone = "13800138000" }]
      $0.entryDate = .with { $0.year = 2026; $0.month = 9; $0.day = 1 }
    }
  }

  /// Enters 2026's finance directly in the shard.
  static func seedFinance(_ code: String) -> @Sendable (District) async throws -> String {
    { district in
      let shard = try await district.server.tenancy.shards.shard(try InstitutionCode(validating: code))
      try await shard.putFinance(
        FinanceYear(year: 2026, income: [.init(category: "tuition", fen: 100, note: "")], expenditure: [], subsidies: []),
        by: "seed", at: district.clock.now)
      return ""
    }
  }

  /// Creates a class directly in the shard; returns its id. The name is unique in the test
  /// process (a random name once collided and the duplicate-name rule rightly refused it).
  static func seedClass(_ code: String) -> @Sendable (District) async throws -> String {
    { district in
      let shard = try await district.server.tenancy.shards.shard(try InstitutionCode(validating: code))
      return try await shard.createClass(
        KindergartenClass(name: "种子\(UniqueNumbers.next())", grade: .middle, schoolYear: "2026-2027", headTeacherStaffId: nil, capacity: 28),
        by: "seed", at: district.clock.now
      ).id
    }
  }
}
