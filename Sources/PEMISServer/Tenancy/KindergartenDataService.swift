internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISRouting
internal import PEMISStore
internal import SwiftProtobuf

/// `pemis.v1.KindergartenData`: basic information, classes and staff in the kindergarten's own
/// shard, each change kept in its history (old, new, who, when).
struct KindergartenDataService: Pemis_V1_KindergartenData.SimpleServiceProtocol {
  let tenancy: Tenancy

  private static func check(_ violations: [DomainError]) throws {
    if !violations.isEmpty { throw FieldViolationsError(violations) }
  }

  // MARK: Profile

  func getProfile(request: Pemis_V1_GetProfileRequest, context: ServerContext) async throws -> Pemis_V1_Profile {
    try await handling {
      let (shard, _) = try await tenancy.shard(for: request.kindergartenCode)
      guard let record = try await shard.profile() else {
        throw RPCError(code: .notFound, message: "profile: \(shard.code) has not entered its basic information yet")
      }
      return Self.proto(record, code: shard.code)
    }
  }

  func updateProfile(request: Pemis_V1_UpdateProfileRequest, context: ServerContext) async throws -> Pemis_V1_Profile {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let p = request.profile
      var profile = KindergartenProfile()
      profile.name = p.name
      profile.address = p.address
      profile.level = p.level.isEmpty ? "unrated" : p.level
      profile.licenceNumber = p.licenceNumber
      profile.sponsor = p.sponsor
      profile.principalName = p.principalName
      profile.contactPhone = p.contactPhone
      profile.contactEmail = p.contactEmail
      profile.buildingArea = Int(p.buildingArea)
      profile.outdoorArea = Int(p.outdoorArea)
      profile.approvedCapacity = Int(p.approvedCapacity)
      try Self.check(profile.violations())
      try await shard.updateProfile(profile, by: caller.username, at: tenancy.now())
      AuditTargets.add("profile:\(shard.code)")
      return Self.proto(try await shard.profile()!, code: shard.code)
    }
  }

  static func proto(_ record: ProfileRecord, code: InstitutionCode) -> Pemis_V1_Profile {
    let p = record.profile
    return .with {
      $0.kindergartenCode = code.rawValue
      $0.name = p.name
      $0.address = p.address
      $0.level = p.level
      $0.licenceNumber = p.licenceNumber
      $0.sponsor = p.sponsor
      $0.principalName = p.principalName
      $0.contactPhone = p.contactPhone
      $0.contactEmail = p.contactEmail
      $0.buildingArea = Int32(p.buildingArea)
      $0.outdoorArea = Int32(p.outdoorArea)
      $0.approvedCapacity = Int32(p.approvedCapacity)
      $0.updatedAt = record.updatedAt
      $0.updatedBy = record.updatedBy
    }
  }

  // MARK: Classes

  static func domain(_ c: Pemis_V1_Class) throws -> KindergartenClass {
    guard let grade = Grade(rawValue: c.grade) else {
      throw FieldViolationsError([DomainError(field: "class.grade", rule: "enum", "must be small, middle, large or mixed")])
    }
    let data = KindergartenClass(
      name: c.name.trimmingCharacters(in: .whitespacesAndNewlines), grade: grade, schoolYear: c.schoolYear,
      headTeacherStaffId: c.headTeacherStaffID.isEmpty ? nil : c.headTeacherStaffID, capacity: Int(c.capacity))
    try check(data.violations())
    return data
  }

  static func proto(_ record: ClassRecord) -> Pemis_V1_ClassResponse {
    .with {
      $0.class = .with {
        $0.classID = record.id
        $0.name = record.data.name
        $0.grade = record.data.grade.rawValue
        $0.schoolYear = record.data.schoolYear
        $0.headTeacherStaffID = record.data.headTeacherStaffId ?? ""
        $0.capacity = Int32(record.data.capacity)
      }
      $0.warnings = record.data.warnings
    }
  }

  func listClasses(request: Pemis_V1_ListClassesRequest, context: ServerContext) async throws -> Pemis_V1_ListClassesResponse {
    try await handling {
      let (shard, _) = try await tenancy.shard(for: request.kindergartenCode)
      let classes = try await shard.classes().map { Self.proto($0).class }
      return .with { $0.classes = classes }
    }
  }

  func createClass(request: Pemis_V1_CreateClassRequest, context: ServerContext) async throws -> Pemis_V1_ClassResponse {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let record = try await shard.createClass(try Self.domain(request.class), by: caller.username, at: tenancy.now())
      AuditTargets.add("class:\(shard.code)/\(record.id)")
      return Self.proto(record)
    }
  }

  func updateClass(request: Pemis_V1_UpdateClassRequest, context: ServerContext) async throws -> Pemis_V1_ClassResponse {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let record = try await shard.updateClass(request.class.classID, try Self.domain(request.class), by: caller.username, at: tenancy.now())
      AuditTargets.add("class:\(shard.code)/\(record.id)")
      return Self.proto(record)
    }
  }

  func deleteClass(request: Pemis_V1_DeleteClassRequest, context: ServerContext) async throws -> Pemis_V1_DeleteClassResponse {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      try await shard.deleteClass(request.classID, by: caller.username, at: tenancy.now())
      AuditTargets.add("class:\(shard.code)/\(request.classID)")
      return .init()
    }
  }

  // MARK: Staff

  static func domain(_ s: Pemis_V1_StaffMember) throws -> StaffMember {
    var errors: [DomainError] = []
    let type = IDDocumentType(rawValue: s.idDocumentType)
    if type == nil { errors.append(DomainError(field: "staff.id_document_type", rule: "enum", "must be one of \(IDDocumentType.allCases.map(\.rawValue).joined(separator: ", "))")) }
    let gender = Gender(rawValue: s.gender)
    if gender == nil { errors.append(DomainError(field: "staff.gender", rule: "enum", "must be male or female")) }
    let post = StaffPost(rawValue: s.post)
    if post == nil { errors.append(DomainError(field: "staff.post", rule: "enum", "must be one of \(StaffPost.allCases.map(\.rawValue).joined(separator: ", "))")) }
    if !["active", "left", ""].contains(s.status) { errors.append(DomainError(field: "staff.status", rule: "enum", "must be active or left")) }
    guard let type, let gender, let post else { throw FieldViolationsError(errors) }
    let member = StaffMember(
      name: s.name.trimmingCharacters(in: .whitespacesAndNewlines), idDocumentType: type,
      idDocumentNumber: s.idDocumentNumber.uppercased(), gender: gender, birthDate: CalendarDate(s.birthDate), post: post,
      qualification: s.qualification, certificate: s.certificate, hireDate: CalendarDate(s.hireDate), active: s.status != "left")
    try check(errors + member.violations())
    return member
  }

  /// ID numbers are masked in every answer: the full number went in and stays in the shard.
  static func proto(_ record: StaffRecord) -> Pemis_V1_StaffMember {
    .with {
      $0.staffID = record.id
      $0.name = record.data.name
      $0.idDocumentType = record.data.idDocumentType.rawValue
      $0.idDocumentNumber = IDDocuments.mask(record.data.idDocumentNumber)
      $0.gender = record.data.gender.rawValue
      $0.birthDate = record.data.birthDate.proto
      $0.post = record.data.post.rawValue
      $0.qualification = record.data.qualification
      $0.certificate = record.data.certificate
      $0.hireDate = record.data.hireDate.proto
      $0.status = record.data.active ? "active" : "left"
    }
  }

  func listStaff(request: Pemis_V1_ListStaffRequest, context: ServerContext) async throws -> Pemis_V1_ListStaffResponse {
    try await handling {
      let (shard, _) = try await tenancy.shard(for: request.kindergartenCode)
      let staff = try await shard.staff().map(Self.proto)
      return .with { $0.staff = staff }
    }
  }

  func createStaff(request: Pemis_V1_CreateStaffRequest, context: ServerContext) async throws -> Pemis_V1_StaffMember {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let record = try await shard.createStaff(try Self.domain(request.staff), by: caller.username, at: tenancy.now())
      AuditTargets.add("staff:\(shard.code)/\(record.id)")
      return Self.proto(record)
    }
  }

  func updateStaff(request: Pemis_V1_UpdateStaffRequest, context: ServerContext) async throws -> Pemis_V1_StaffMember {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let record = try await shard.updateStaff(request.staff.staffID, try Self.domain(request.staff), by: caller.username, at: tenancy.now())
      AuditTargets.add("staff:\(shard.code)/\(record.id)")
      return Self.proto(record)
    }
  }

  // MARK: Finance

  static func proto(_ record: FinanceRecord, code: InstitutionCode) -> Pemis_V1_FinanceYear {
    func lines(_ lines: [FinanceYear.Line]) -> [Pemis_V1_Amount] {
      lines.map { line in
        .with {
          $0.category = line.category
          $0.fen = line.fen
          $0.note = line.note
        }
      }
    }
    return .with {
      $0.kindergartenCode = code.rawValue
      $0.year = Int32(record.finance.year)
      $0.income = lines(record.finance.income)
      $0.expenditure = lines(record.finance.expenditure)
      $0.subsidies = lines(record.finance.subsidies)
      $0.updatedBy = record.updatedBy
      $0.updatedAt = record.updatedAt
      $0.confirmedBy = record.confirmedBy ?? ""
      $0.confirmedAt = record.confirmedAt ?? 0
    }
  }

  func getFinance(request: Pemis_V1_GetFinanceRequest, context: ServerContext) async throws -> Pemis_V1_FinanceYear {
    try await handling {
      let (shard, _) = try await tenancy.shard(for: request.kindergartenCode)
      guard let record = try await shard.finance(year: Int(request.year)) else {
        throw RPCError(code: .notFound, message: "year: no finance information for \(request.year)")
      }
      return Self.proto(record, code: shard.code)
    }
  }

  func putFinance(request: Pemis_V1_PutFinanceRequest, context: ServerContext) async throws -> Pemis_V1_FinanceYear {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      func lines(_ amounts: [Pemis_V1_Amount]) -> [FinanceYear.Line] {
        amounts.map { FinanceYear.Line(category: $0.category, fen: $0.fen, note: $0.note) }
      }
      let f = request.finance
      let finance = FinanceYear(year: Int(f.year), income: lines(f.income), expenditure: lines(f.expenditure), subsidies: lines(f.subsidies))
      try Self.check(finance.violations())
      try await shard.putFinance(finance, by: caller.username, at: tenancy.now())
      AuditTargets.add("finance:\(shard.code)/\(finance.year)")
      return Self.proto(try await shard.finance(year: finance.year)!, code: shard.code)
    }
  }

  func confirmFinance(request: Pemis_V1_ConfirmFinanceRequest, context: ServerContext) async throws -> Pemis_V1_FinanceYear {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      try await shard.confirmFinance(year: Int(request.year), by: caller.username, at: tenancy.now())
      AuditTargets.add("finance:\(shard.code)/\(request.year)")
      return Self.proto(try await shard.finance(year: Int(request.year))!, code: shard.code)
    }
  }

  // MARK: Leadership group

  static func proto(_ record: LeadershipRecord, code: InstitutionCode, reportStatus: String = "") -> Pemis_V1_LeadershipGroup {
    .with {
      $0.kindergartenCode = code.rawValue
      $0.members = record.group.members.map { m in
        .with {
          $0.name = m.name
          $0.role = m.role
          $0.staffID = m.staffId ?? ""
        }
      }
      $0.changedOn = record.group.changedOn.proto
      $0.updatedBy = record.updatedBy
      $0.updatedAt = record.updatedAt
      $0.reportStatus = reportStatus
    }
  }

  func getLeadershipGroup(
    request: Pemis_V1_GetLeadershipGroupRequest, context: ServerContext
  ) async throws -> Pemis_V1_LeadershipGroup {
    try await handling {
      let (shard, _) = try await tenancy.shard(for: request.kindergartenCode)
      guard let record = try await shard.leadership() else {
        throw RPCError(code: .notFound, message: "leadership: \(shard.code) has not registered its leadership group yet")
      }
      return Self.proto(record, code: shard.code)
    }
  }

  /// Art. 19: the change is reported within 3 working days of taking effect. Entering it is the
  /// report; the obligation is opened and discharged at once, on time or late.
  func setLeadershipGroup(
    request: Pemis_V1_SetLeadershipGroupRequest, context: ServerContext
  ) async throws -> Pemis_V1_LeadershipGroup {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let today = tenancy.today
      let group = LeadershipGroup(
        members: request.members.map {
          .init(name: $0.name.trimmingCharacters(in: .whitespacesAndNewlines), role: $0.role, staffId: $0.staffID.isEmpty ? nil : $0.staffID)
        },
        changedOn: CalendarDate(request.changedOn))
      try Self.check(group.violations(today: today))
      // The change and its Art. 19 report, through the routing layer.
      let router = tenancy.router
      var report = router.reportedObligation(.leadershipChange, in: shard, subject: "leadership:\(group.changedOn)", on: group.changedOn)
      let (username, now) = (caller.username, tenancy.now)
      try await router.reportedChange("leadership", in: shard, obligations: [report], by: caller.username) {
        try await shard.setLeadership(group, by: username, at: now())
      }
      AuditTargets.add("leadership:\(shard.code)")
      report.doneOn = today.description
      let status = report.status(today: today) == .done(onTime: true) ? "done" : "done_late"
      return Self.proto(try await shard.leadership()!, code: shard.code, reportStatus: status)
    }
  }

  // MARK: History

  func getHistory(request: Pemis_V1_GetHistoryRequest, context: ServerContext) async throws -> Pemis_V1_GetHistoryResponse {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let page = try Page(request.page)
      var record = request.record
      let kind: DataKind
      if record == "profile" || record == "leadership" || ["class:", "staff:"].contains(where: record.hasPrefix) {
        kind = .kindergartenInfo
      } else if record.hasPrefix("finance:") {
        kind = .finance
      } else if record.hasPrefix("child:") {
        kind = .childRecords
      } else {
        throw RPCError(
          code: .invalidArgument,
          message: "record: must be profile, leadership, class:<id>, staff:<id>, finance:<year> or child:<record number or reference>")
      }
      // The door let in every reader of kindergarten information; a record of another kind is
      // held to that kind's readers (docs/TENANCY.md, "Who may see what").
      guard Policy.mayRead(kind, caller) else {
        throw RPCError(
          code: .permissionDenied,
          message: "record: \(caller.role.rawValue) may not read the history of \(kind == .finance ? "finance information" : "child records") (Art. 12)")
      }
      var reference: String?
      if kind == .childRecords {
        // Class leaders: their own classes' children only; to them another child does not exist.
        let row = try await ChildRecordsService(tenancy: tenancy).child(shard, String(record.dropFirst(6)), caller: caller)
        record = "child:" + row.recordNumber
        reference = tenancy.registry.childReferences.reference(row.recordNumber)
        AuditTargets.add("child:" + (reference ?? ""))
      }
      let (entries, total) = try await shard.history(record: record, offset: page.offset, limit: page.limit)
      // A child's history is held to what the caller may see of the child (``ChildView``).
      let view = kind == .childRecords ? ChildView.record(for: caller.role) : nil
      return .with {
        $0.entries = entries.map { e in
          let shown = view?.shows(historyField: e.field) ?? true
          return .with {
            $0.record = reference.map { "child:" + $0 } ?? e.record
            $0.field = e.field
            $0.oldValue = shown ? e.oldValue : ChildView.withheld
            $0.newValue = shown ? e.newValue : ChildView.withheld
            $0.changedBy = e.changedBy
            $0.changedAt = e.changedAt
          }
        }
        $0.page = page.info(total: total, returned: entries.count)
      }
    }
  }
}
