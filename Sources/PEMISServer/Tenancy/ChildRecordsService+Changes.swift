internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISRouting
internal import PEMISStore
internal import SwiftProtobuf

/// Changes after enrollment: other fields directly, key information through a request the
/// principal decides (MISSION: key information); the monthly audit (Art. 11); the paper archive.
extension ChildRecordsService {
  /// Class leaders act on the children of their own classes only; to others a child they may
  /// not see does not exist.
  func checkClassLeader(_ caller: Caller, _ row: ChildRow) throws {
    if caller.role == .classLeader, row.classId.map(caller.classes.contains) != true {
      throw RPCError(code: .notFound, message: "record_number: no child \(IDDocuments.mask(row.recordNumber)) here")
    }
  }

  func child(_ shard: TenantShard, _ recordNumber: String, caller: Caller) async throws -> ChildRow {
    guard let row = try await shard.child(try await tenancy.recordNumber(recordNumber, in: shard)) else {
      throw RPCError(code: .notFound, message: "record_number: no child \(IDDocuments.mask(recordNumber)) here")
    }
    try checkClassLeader(caller, row)
    return row
  }

  static func required(_ text: String, field: String, max: Int, why: String = "") throws -> String {
    let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
    guard !value.isEmpty, value.count <= max else {
      throw RPCError(code: .invalidArgument, message: "\(field): required\(why), at most \(max) characters")
    }
    return value
  }

  /// The record's rules, checked on the whole record as a change would leave it.
  static func validator(today: CalendarDate) -> @Sendable (ChildRecord) throws -> Void {
    { record in
      let violations = record.violations(today: today)
      if !violations.isEmpty { throw FieldViolationsError(violations) }
    }
  }

  func updateChild(request: Pemis_V1_UpdateChildRequest, context: ServerContext) async throws -> Pemis_V1_Child {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let fields = try OtherField.parse(request.fields)
      let changedOn = try tenancy.pastDate(request.changedOn, field: "changed_on")
      let current = try await child(shard, request.recordNumber, caller: caller)
      // Only the named fields are read from the request, so the key fields it carries are ignored.
      var source = current.data
      let incoming = request.child
      var errors: [DomainError] = []
      for field in fields {
        switch field {
        case .nationality: source.nationality = incoming.nationality
        case .ethnicity: source.ethnicity = incoming.ethnicity
        case .birthPlace: source.birthPlace = incoming.birthPlace
        case .householdRegister: source.householdRegister = incoming.householdRegister
        case .householdType: source.householdType = incoming.householdType
        case .hmtStatus: source.hmtStatus = incoming.hmtStatus
        case .health: source.health = incoming.health
        case .onlyChild: source.onlyChild = incoming.onlyChild
        case .guardians: source.guardians = incoming.guardians.map { .init(name: $0.name, relation: $0.relation, phone: $0.phone) }
        case .entryDate:
          source.entryDate = CalendarDate(incoming.entryDate)
          if !source.entryDate.isValid { errors.append(DomainError(field: "child.entry_date", rule: "date", "is not a valid date")) }
        }
      }
      if !errors.isEmpty { throw FieldViolationsError(errors) }
      // Dated from the record's entry on (the earlier entry date when the change corrects it).
      try TimeOrder.checkEvent(changedOn, field: "changed_on", entered: min(current.data.entryDate, source.entryDate), today: tenancy.today)
      // Art. 17(2): other changes entered within 3 working days; the entry is the report, made
      // with the shard's write through the routing layer.
      let router = tenancy.router
      let subject = tenancy.registry.childReferences.subject(
        recordNumber: current.recordNumber, suffix: ":\(fields.map(\.rawValue).joined(separator: "+"))@\(tenancy.now())")
      let validate = Self.validator(today: tenancy.today)
      let (recordNumber, username, now, changed) = (current.recordNumber, caller.username, tenancy.now, source)
      let row = try await router.reportedChange(
        "update", in: shard, obligations: [router.reportedObligation(.otherChange, in: shard, subject: subject, on: changedOn)],
        by: caller.username
      ) {
        try await shard.updateChild(recordNumber, fields: fields, from: changed, validate: validate, by: username, at: now())
      }
      AuditTargets.add(target(row.recordNumber))
      return written(row, by: caller)
    }
  }

  static func proto(_ record: KeyChangeRecord) -> Pemis_V1_KeyChange {
    .with {
      $0.id = record.id ?? 0
      $0.recordNumber = IDDocuments.mask(record.recordNumber)
      $0.changes = record.changes.map { c in
        .with {
          $0.field = c.field
          $0.oldValue = c.old
          $0.newValue = c.new
        }
      }
      $0.evidence = record.evidence
      $0.templateSignedOn = (CalendarDate(iso: record.templateSignedOn) ?? CalendarDate(year: 0, month: 0, day: 0)).proto
      $0.state = record.state.rawValue
      $0.requestedBy = record.requestedBy
      $0.requestedAt = record.requestedAt
      $0.decidedBy = record.decidedBy ?? ""
      $0.decidedAt = record.decidedAt ?? 0
      $0.decisionNote = record.decisionNote ?? ""
    }
  }

  func requestKeyChange(request: Pemis_V1_RequestKeyChangeRequest, context: ServerContext) async throws -> Pemis_V1_KeyChange {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let evidence = try Self.required(request.evidence, field: "evidence", max: 300, why: " (the written request and its proof)")
      guard request.templateSignedOn.year != 0 else {
        throw RPCError(code: .invalidArgument, message: "template_signed_on: required: when a parent signed the new information template")
      }
      let signedOn = try tenancy.pastDate(request.templateSignedOn, field: "template_signed_on")
      var values = KeyChangeValues()
      var errors: [DomainError] = []
      guard !request.fields.isEmpty else {
        throw RPCError(code: .invalidArgument, message: "fields: name the key fields to change (\(KeyField.allCases.map(\.rawValue).joined(separator: ", ")))")
      }
      for name in request.fields {
        switch KeyField(rawValue: name) {
        case .name: values.name = request.name.trimmingCharacters(in: .whitespacesAndNewlines)
        case .gender:
          values.gender = Gender(rawValue: request.gender)
          if values.gender == nil { errors.append(DomainError(field: "gender", rule: "enum", "must be male or female")) }
        case .birthDate: values.birthDate = CalendarDate(request.birthDate)
        case .idDocumentType:
          values.idDocumentType = IDDocumentType(rawValue: request.idDocumentType)
          if values.idDocumentType == nil {
            errors.append(DomainError(field: "id_document_type", rule: "enum", "must be one of \(IDDocumentType.allCases.map(\.rawValue).joined(separator: ", "))"))
          }
        case .idDocumentNumber: values.idDocumentNumber = request.idDocumentNumber.uppercased()
        case nil:
          errors.append(DomainError(field: "fields", rule: "enum", "'\(name)' is not key information; other fields change with UpdateChild"))
        }
      }
      if !errors.isEmpty { throw FieldViolationsError(errors) }
      let current = try await child(shard, request.recordNumber, caller: caller)
      // The record as the change would leave it must keep every rule (ID check character, birth
      // date and gender agreeing with the ID, …): checked now, and again on approval.
      try Self.validator(today: tenancy.today)(values.applied(to: current.data))
      let (record, _) = try await shard.requestKeyChange(
        current.recordNumber, values: values, evidence: evidence, templateSignedOn: signedOn, by: caller.username, at: tenancy.now())
      AuditTargets.add(target(current.recordNumber))
      AuditTargets.add("key-change:\(record.id ?? 0)")
      return Self.proto(record)
    }
  }

  func listKeyChanges(request: Pemis_V1_ListKeyChangesRequest, context: ServerContext) async throws -> Pemis_V1_ListKeyChangesResponse {
    try await handling {
      let (shard, _) = try await tenancy.shard(for: request.kindergartenCode)
      let page = try Page(request.page)
      var state: KeyChangeState?
      if !request.state.isEmpty {
        state = KeyChangeState(rawValue: request.state)
        if state == nil { throw RPCError(code: .invalidArgument, message: "state: must be empty, pending, approved or rejected") }
      }
      let (changes, total) = try await shard.keyChanges(state: state, offset: page.offset, limit: page.limit)
      return .with {
        $0.changes = changes.map { Self.proto($0.0) }
        $0.page = page.info(total: total, returned: changes.count)
      }
    }
  }

  func decideKeyChange(request: Pemis_V1_DecideKeyChangeRequest, context: ServerContext) async throws -> Pemis_V1_KeyChange {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let note = request.note.trimmingCharacters(in: .whitespacesAndNewlines)
      if !request.approve && note.isEmpty {
        throw RPCError(code: .invalidArgument, message: "note: a rejection says why")
      }
      guard note.count <= 300 else { throw RPCError(code: .invalidArgument, message: "note: at most 300 characters") }
      // Through the routing layer: an approval moves the child's identity in the district index
      // (refused when another child has it) and is its own Art. 17(2) report.
      let decided = try await tenancy.router.decideKeyChange(
        request.id, in: shard, approve: request.approve, note: note, validate: Self.validator(today: tenancy.today), by: caller.username)
      AuditTargets.add(target(decided.after.recordNumber))
      AuditTargets.add("key-change:\(request.id) \(decided.request.state.rawValue)")
      return Self.proto(decided.request)
    }
  }

  // MARK: The monthly audit (Art. 11)

  func month(_ text: String) throws -> YearMonth {
    guard let month = YearMonth(text: text) else {
      throw RPCError(code: .invalidArgument, message: "month: must be YYYY-MM, e.g. 2026-10")
    }
    return month
  }

  /// Seconds since 1970 of the month's first moment in Beijing, and of the next month's.
  static func bounds(_ month: YearMonth) -> (Int64, Int64) {
    (month.first.beijingMidnight, month.next.first.beijingMidnight)
  }

  func monthlyAudit(_ shard: TenantShard, _ month: YearMonth, page: Page) async throws -> Pemis_V1_MonthlyAudit {
    try await tenancy.openMonthlyAudits()
    let (from, to) = Self.bounds(month)
    let audit = try await shard.monthlyAudit(month: month, from: from, to: to, offset: page.offset, limit: page.limit)
    let obligation = try await tenancy.registry.obligation(
      kindergarten: shard.code.rawValue, kind: .monthlyAudit, subject: Registry.monthlyAuditSubject(month))
    let today = tenancy.today
    // The month's changes are held to what the caller may see of a child (``ChildView``).
    let view = ChildView.record(for: (try? Caller.required())?.role ?? .districtAdmin)
    return .with {
      $0.month = month.description
      $0.changes = audit.changes.map { entry in
        let shown = !entry.record.hasPrefix("child:") || view.shows(historyField: entry.field)
        return .with {
          // Record names carry record numbers, which carry ID numbers: the child's reference
          // here, which the kindergarten can open (`pemis child show C-…`) and nobody can read.
          $0.record = entry.record.hasPrefix("child:") ? target(String(entry.record.dropFirst(6))) : entry.record
          $0.field = entry.field
          $0.oldValue = shown ? entry.oldValue : ChildView.withheld
          $0.newValue = shown ? entry.newValue : ChildView.withheld
          $0.changedBy = entry.changedBy
          $0.changedAt = entry.changedAt
        }
      }
      $0.page = page.info(total: audit.total, returned: audit.changes.count)
      $0.keyChangesDecided = Int64(audit.keyChangesDecided)
      if let due = obligation?.dueOn.flatMap(CalendarDate.init(iso:)) { $0.dueOn = due.proto }
      if let signOff = audit.signOff {
        $0.status = "signed_off"
        $0.signedOffBy = signOff.signedBy
        $0.signedOffAt = signOff.signedAt
        $0.note = signOff.note
      } else {
        $0.status = obligation.map { $0.status(today: today) == .overdue ? "overdue" : "open" } ?? "open"
      }
    }
  }

  func getMonthlyAudit(request: Pemis_V1_MonthlyAuditRequest, context: ServerContext) async throws -> Pemis_V1_MonthlyAudit {
    try await handling {
      let (shard, _) = try await tenancy.shard(for: request.kindergartenCode)
      let month = try month(request.month)
      return try await monthlyAudit(shard, month, page: try Page(request.page))
    }
  }

  func signOffMonth(request: Pemis_V1_SignOffMonthRequest, context: ServerContext) async throws -> Pemis_V1_MonthlyAudit {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      let month = try month(request.month)
      guard month < YearMonth(tenancy.today) else {
        throw RPCError(code: .failedPrecondition, message: "month: \(month) has not ended; it is signed off once it has")
      }
      if let kindergarten = try await tenancy.registry.kindergarten(shard.code.rawValue),
        month < YearMonth(CalendarDate(beijingTimeOf: kindergarten.activatedAt))
      {
        throw RPCError(code: .failedPrecondition, message: "month: \(month) is before the kindergarten had its accounts; there is nothing to audit")
      }
      let note = request.note.trimmingCharacters(in: .whitespacesAndNewlines)
      guard note.count <= 300 else { throw RPCError(code: .invalidArgument, message: "note: at most 300 characters") }
      try await tenancy.openMonthlyAudits()
      // The sign-off and the discharge of the month's obligation, through the routing layer.
      let (username, now) = (caller.username, tenancy.now)
      _ = try await tenancy.router.reportedChange(
        "sign-off", in: shard, completions: [ObligationCompletion(kind: .monthlyAudit, subject: Registry.monthlyAuditSubject(month))],
        by: caller.username
      ) {
        try await shard.signOff(month: month, note: note, by: username, at: now())
      }
      AuditTargets.add("month:\(shard.code)/\(month)")
      return try await monthlyAudit(shard, month, page: try Page(.with { $0.pageSize = 1 }))
    }
  }

  // MARK: The paper archive

  func proto(_ row: ChildRow, _ archive: PaperArchiveRecord?, today: CalendarDate) -> Pemis_V1_PaperArchiveEntry {
    .with {
      $0.recordNumber = IDDocuments.mask(row.recordNumber)
      $0.childRef = tenancy.registry.childReferences.reference(row.recordNumber)
      $0.name = row.data.name
      $0.state = row.state.rawValue
      if let archive {
        $0.recorded = true
        $0.parentSignedOn = (CalendarDate(iso: archive.parentSignedOn) ?? today).proto
        $0.checkedBy = archive.checkedBy
        $0.checkedOn = (CalendarDate(iso: archive.checkedOn) ?? today).proto
        if let shredded = archive.shreddedOn.flatMap(CalendarDate.init(iso:)) {
          $0.shreddedOn = shredded.proto
          $0.shreddedBy = archive.shreddedBy ?? ""
        }
      }
      if let left = row.leftOn.flatMap(CalendarDate.init(iso:)) {
        let shred = left.addingYears(1)
        $0.leftOn = left.proto
        $0.shredAfter = shred.proto
        $0.shreddable = archive != nil && archive?.shreddedOn == nil && shred <= today
      }
    }
  }

  func recordPaperArchive(request: Pemis_V1_PaperArchiveRequest, context: ServerContext) async throws -> Pemis_V1_PaperArchiveEntry {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      guard request.parentSignedOn.year != 0 else {
        throw RPCError(code: .invalidArgument, message: "parent_signed_on: required: when a parent signed the information template")
      }
      let signed = try tenancy.pastDate(request.parentSignedOn, field: "parent_signed_on")
      let checkedBy = try Self.required(request.checkedBy, field: "checked_by", max: 50, why: " (who checked it against the household register)")
      let checked = try tenancy.pastDate(request.checkedOn, field: "checked_on")
      guard checked >= signed else {
        throw RPCError(code: .invalidArgument, message: "checked_on: cannot be before parent_signed_on")
      }
      let current = try await child(shard, request.recordNumber, caller: caller)
      let (archive, row) = try await shard.recordPaperArchive(
        current.recordNumber, parentSignedOn: signed, checkedBy: checkedBy, checkedOn: checked, by: caller.username, at: tenancy.now())
      AuditTargets.add(target(row.recordNumber))
      return proto(row, archive, today: tenancy.today)
    }
  }

  func listPaperArchive(request: Pemis_V1_ListPaperArchiveRequest, context: ServerContext) async throws -> Pemis_V1_ListPaperArchiveResponse {
    try await handling {
      let (shard, _) = try await tenancy.shard(for: request.kindergartenCode)
      let page = try Page(request.page)
      let filter: TenantShard.PaperArchiveFilter
      switch request.filter {
      case "", "all": filter = .all
      case "missing": filter = .missing
      case "shreddable": filter = .shreddable
      case "shredded": filter = .shredded
      default: throw RPCError(code: .invalidArgument, message: "filter: must be all, missing, shreddable or shredded")
      }
      let today = tenancy.today
      let (entries, total) = try await shard.paperArchive(filter: filter, leftBy: today.addingYears(-1), offset: page.offset, limit: page.limit)
      return .with {
        $0.entries = entries.map { proto($0.0, $0.1, today: today) }
        $0.page = page.info(total: total, returned: entries.count)
      }
    }
  }
  func recordPaperShredded(request: Pemis_V1_PaperShreddedRequest, context: ServerContext) async throws -> Pemis_V1_PaperArchiveEntry {
    try await handling {
      let (shard, caller) = try await tenancy.shard(for: request.kindergartenCode)
      // Unset: today.
      let date = try tenancy.pastDate(request.shreddedOn, field: "shredded_on")
      let by = try Self.required(request.shreddedBy, field: "shredded_by", max: 50, why: " (who destroyed the paper)")
      let current = try await child(shard, request.recordNumber, caller: caller)
      let (archive, row) = try await shard.recordPaperShredded(current.recordNumber, on: date, shreddedBy: by, by: caller.username, at: tenancy.now())
      AuditTargets.add(target(row.recordNumber))
      return proto(row, archive, today: tenancy.today)
    }
  }

}
