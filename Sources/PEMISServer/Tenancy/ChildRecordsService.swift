internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISRouting
internal import PEMISStore
internal import SwiftProtobuf

/// `pemis.v1.ChildRecords`: enrollment and class placement, in the kindergarten's shard.
struct ChildRecordsService: Pemis_V1_ChildRecords.SimpleServiceProtocol {
  let tenancy: Tenancy

  static func domain(_ c: Pemis_V1_Child) throws -> ChildRecord {
    var errors: [DomainError] = []
    let gender = Gender(rawValue: c.gender)
    if gender == nil { errors.append(DomainError(field: "child.gender", rule: "enum", "must be male or female")) }
    let type = IDDocumentType(rawValue: c.idDocumentType)
    if type == nil {
      errors.append(DomainError(field: "child.id_document_type", rule: "enum", "must be one of \(IDDocumentType.allCases.map(\.rawValue).joined(separator: ", "))"))
    }
    guard let gender, let type else { throw FieldViolationsError(errors) }
    return ChildRecord(
      name: c.name.trimmingCharacters(in: .whitespacesAndNewlines), gender: gender, birthDate: CalendarDate(c.birthDate),
      idDocumentType: type, idDocumentNumber: c.idDocumentNumber.uppercased(), nationality: c.nationality, ethnicity: c.ethnicity,
      birthPlace: c.birthPlace, householdRegister: c.householdRegister, householdType: c.householdType, hmtStatus: c.hmtStatus,
      health: c.health, onlyChild: c.onlyChild,
      guardians: c.guardians.map { .init(name: $0.name, relation: $0.relation, phone: $0.phone) }, entryDate: CalendarDate(c.entryDate))
  }

  /// A child as `view` lets its reader see it (``ChildView``); the one place a child becomes a
  /// message.
  static func proto(_ row: ChildRow, view: ChildView, references: ChildReferences) -> Pemis_V1_Child {
    let c = row.data
    return .with {
      $0.recordNumber = view.fullIdentifiers ? row.recordNumber : IDDocuments.mask(row.recordNumber)
      $0.childRef = references.reference(row.recordNumber)
      $0.name = c.name
      $0.gender = c.gender.rawValue
      $0.birthDate = c.birthDate.proto
      $0.idDocumentType = c.idDocumentType.rawValue
      $0.idDocumentNumber = view.fullIdentifiers ? c.idDocumentNumber : IDDocuments.mask(c.idDocumentNumber)
      $0.state = row.state.rawValue
      if view.details {
        $0.nationality = c.nationality
        $0.ethnicity = c.ethnicity
        $0.onlyChild = c.onlyChild
        $0.entryDate = c.entryDate.proto
        $0.classID = row.classId ?? ""
      }
      if view.household {
        $0.birthPlace = c.birthPlace
        $0.householdRegister = c.householdRegister
        $0.householdType = c.householdType
        $0.hmtStatus = c.hmtStatus
      }
      if view.health { $0.health = c.health }
      if view.guardians {
        $0.guardians = c.guardians.map { g in
          .with {
            $0.name = g.name
            $0.relation = g.relation
            $0.phone = g.phone
          }
        }
      }
    }
  }

  /// A child for a list or a write's answer.
  func listed(_ row: ChildRow) -> Pemis_V1_Child { Self.proto(row, view: .listing, references: tenancy.registry.childReferences) }

  /// A changed child as its writer sees it: what the role may see of the record, the numbers
  /// masked (the writer just sent the values; the answer need not carry the ID back).
  func written(_ row: ChildRow, by caller: Caller) -> Pemis_V1_Child {
    var view = ChildView.record(for: caller.role)
    view.fullIdentifiers = false
    return Self.proto(row, view: view, references: tenancy.registry.childReferences)
  }

  /// The audit target naming a child: its reference, never its number.
  func target(_ recordNumber: String) -> String { "child:" + tenancy.registry.childReferences.reference(recordNumber) }

  func enrollChild(request: Pemis_V1_EnrollChildRequest, context: ServerContext) async throws -> Pemis_V1_Child {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let today = tenancy.today
      let child = try Self.domain(request.child)
      let violations = child.violations(today: today)
      if !violations.isEmpty { throw FieldViolationsError(violations) }
      let classId = request.classID.isEmpty ? nil : request.classID
      // A mid-term joiner (插班) joins a running class: it needs one at once.
      if request.midTerm && classId == nil {
        throw RPCError(code: .invalidArgument, message: "class_id: a mid-term joiner joins a class; name it")
      }
      if caller.role == .classLeader, classId.map({ !caller.classes.contains($0) }) ?? true {
        throw RPCError(code: .permissionDenied, message: "class_id: a class leader enrolls children into their own classes (\(caller.classes.joined(separator: ", ")))")
      }
      // Through the routing layer: refused if the child's identity is taken; the enrollment is
      // its own Art. 15(3) report (entered within 30 working days of entry), in the same step.
      let row = try await tenancy.router.enroll(child, in: shard, classId: classId, midTerm: request.midTerm, by: caller.username)
      AuditTargets.add(target(row.recordNumber))
      return listed(row)
    }
  }

  func listChildren(request: Pemis_V1_ListChildrenRequest, context: ServerContext) async throws -> Pemis_V1_ListChildrenResponse {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let page = try Page(request.page)
      let classes: Set<String>? = caller.role == .classLeader ? Set(caller.classes) : nil
      let (rows, total) = try await shard.children(
        classId: request.classID.isEmpty ? nil : request.classID, classes: classes, offset: page.offset, limit: page.limit)
      return .with {
        $0.children = rows.map(listed)
        $0.page = page.info(total: total, returned: rows.count)
      }
    }
  }

  func getChild(request: Pemis_V1_GetChildRequest, context: ServerContext) async throws -> Pemis_V1_Child {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let row = try await child(shard, request.recordNumber, caller: caller)
      let view = ChildView.record(for: caller.role)
      AuditTargets.add(target(row.recordNumber))
      // A personal-data access: who (the entry's account), whose (the reference), which fields.
      if !view.disclosed.isEmpty { AuditTargets.add("personal-data:" + view.disclosed.joined(separator: "+")) }
      return Self.proto(row, view: view, references: tenancy.registry.childReferences)
    }
  }

  func assignClass(request: Pemis_V1_AssignClassRequest, context: ServerContext) async throws -> Pemis_V1_Child {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let row = try await shard.assignClass(try await tenancy.recordNumber(request.recordNumber, in: shard), classId: request.classID, by: caller.username, at: tenancy.now())
      AuditTargets.add(target(row.recordNumber))
      return listed(row)
    }
  }

  private func step(
    _ request: Pemis_V1_ClassStepRequest, graduate: Bool
  ) async throws -> Pemis_V1_ClassStepResponse {
    let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
    let date = try tenancy.pastDate(request.effectiveOn, field: "effective_on")
    let router = tenancy.router
    let result: TenantShard.ClassStep
    if graduate {
      // Through the routing layer: the children's index rows and the report go with it.
      result = try await router.graduateClass(request.classID, in: shard, on: date, apply: !request.preview, by: caller.username)
    } else if request.preview {
      result = try await shard.promoteClass(request.classID, on: date, apply: false, by: caller.username, at: tenancy.now())
    } else {
      let preview = try await shard.promoteClass(request.classID, on: date, apply: false, by: caller.username, at: tenancy.now())
      let subject = "class:\(request.classID) promotion to \(preview.classRecord.data.grade.rawValue)"
      let classID = request.classID
      let username = caller.username
      let now = tenancy.now
      result = try await router.reportedChange(
        "promote", in: shard, obligations: [router.reportedObligation(.promotion, in: shard, subject: subject, on: date)], by: caller.username
      ) {
        try await shard.promoteClass(classID, on: date, apply: true, by: username, at: now())
      }
    }
    if !request.preview { AuditTargets.add("class:\(shard.code)/\(request.classID)") }
    return .with {
      $0.classID = result.classRecord.id
      $0.grade = result.classRecord.data.grade.rawValue
      $0.schoolYear = result.classRecord.data.schoolYear
      $0.children = result.children.map(listed)
      $0.preview = request.preview
    }
  }

  func promoteClass(request: Pemis_V1_ClassStepRequest, context: ServerContext) async throws -> Pemis_V1_ClassStepResponse {
    try await handling { try await step(request, graduate: false) }
  }

  func graduateClass(request: Pemis_V1_ClassStepRequest, context: ServerContext) async throws -> Pemis_V1_ClassStepResponse {
    try await handling { try await step(request, graduate: true) }
  }

  func leaveChild(request: Pemis_V1_LeaveChildRequest, context: ServerContext) async throws -> Pemis_V1_Child {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let reason = request.reason.trimmingCharacters(in: .whitespacesAndNewlines)
      guard !reason.isEmpty, reason.count <= 200 else {
        throw RPCError(code: .invalidArgument, message: "reason: required, at most 200 characters")
      }
      let date = try tenancy.pastDate(request.leftOn, field: "left_on")
      // Through the routing layer: a pending transfer is cancelled first; the index and the
      // Art. 17(2) report go with the shard's write.
      let row = try await tenancy.router.endAttendance(
        try await tenancy.recordNumber(request.recordNumber, in: shard), in: shard, ending: .leave, on: date, reason: "\(date) \(reason)",
        by: caller.username)
      AuditTargets.add(target(row.recordNumber))
      return listed(row)
    }
  }

  func recordAccidentalDeparture(
    request: Pemis_V1_AccidentalDepartureRequest, context: ServerContext
  ) async throws -> Pemis_V1_Child {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      guard ["injury", "death"].contains(request.kind) else {
        throw RPCError(code: .invalidArgument, message: "kind: must be injury or death")
      }
      let evidence = request.evidence.trimmingCharacters(in: .whitespacesAndNewlines)
      guard !evidence.isEmpty, evidence.count <= 200 else {
        throw RPCError(code: .invalidArgument, message: "evidence: the certificate or report is required (Art. 17(3)), at most 200 characters")
      }
      let date = try tenancy.pastDate(request.occurredOn, field: "occurred_on")
      let row = try await tenancy.router.endAttendance(
        try await tenancy.recordNumber(request.recordNumber, in: shard), in: shard, ending: .accidentalDeparture(death: request.kind == "death"),
        on: date, reason: "\(request.kind) on \(date); \(evidence)", by: caller.username)
      AuditTargets.add(target(row.recordNumber))
      return listed(row)
    }
  }
}
