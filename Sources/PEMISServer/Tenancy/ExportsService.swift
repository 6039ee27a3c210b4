internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISStore
internal import SwiftProtobuf

/// `pemis.v1.Exports`: children's data leaves only with written approval (Art. 20;
/// docs/TENANCY.md, "Exports"). Every list elsewhere pages (at most 500 rows a call); a whole
/// kindergarten's or district's children in one file is an export, approved field by field.
struct ExportsService: Pemis_V1_Exports.SimpleServiceProtocol {
  let tenancy: Tenancy

  func proto(_ r: ExportRecord) -> Pemis_V1_Export {
    .with {
      $0.id = r.id
      $0.kindergartenCode = r.kindergartenCode ?? ""
      $0.purpose = r.purpose
      $0.recipient = r.recipient
      $0.fields = r.fieldList.map(\.rawValue)
      $0.fullFieldsRequested = r.fullRequestedList.map(\.rawValue)
      $0.fullFieldsApproved = r.fullApprovedList.map(\.rawValue)
      $0.state = r.state.rawValue
      $0.requestedBy = r.requestedBy
      $0.requestedAt = r.requestedAt
      $0.decidedBy = r.decidedBy ?? ""
      $0.decidedByRole = r.decidedRole.flatMap(Role.init(rawValue:))?.proto ?? .unspecified
      $0.decidedAt = r.decidedAt ?? 0
      $0.note = r.note ?? ""
      $0.rows = Int64(r.rows)
      $0.sha256 = r.sha256 ?? ""
      $0.expiresAt = r.expiresAt ?? 0
      $0.downloads = Int64(r.downloads)
    }
  }

  static func text(_ value: String, field: String, max: Int, what: String) throws -> String {
    let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
    guard !trimmed.isEmpty, trimmed.count <= max else {
      throw RPCError(code: .invalidArgument, message: "\(field): required (\(what)), at most \(max) characters")
    }
    return trimmed
  }

  func requestExport(request: Pemis_V1_RequestExportRequest, context: ServerContext) async throws -> Pemis_V1_Export {
    try await handling {
      let caller = try Caller.required()
      let purpose = try Self.text(request.purpose, field: "purpose", max: 300, what: "why the data is needed, for the approver")
      let recipient = try Self.text(request.recipient, field: "recipient", max: 100, what: "who receives it")
      let fields = try ExportField.parse(request.fields, field: "fields")
      guard !fields.isEmpty else {
        throw RPCError(code: .invalidArgument, message: "fields: name at least one of \(ExportField.allCases.map(\.rawValue).joined(separator: ", "))")
      }
      let full = try ExportField.parse(request.fullFields, field: "full_fields")
      if let extra = full.first(where: { !fields.contains($0) }) {
        throw RPCError(code: .invalidArgument, message: "full_fields: \(extra.rawValue) is not among the fields asked for")
      }
      if let plain = full.first(where: { !$0.hasFullForm }) {
        throw RPCError(code: .invalidArgument, message: "full_fields: \(plain.rawValue) has no de-identified form; leave it out of full_fields")
      }
      // A kindergarten's staff export their own kindergarten; a district office names one
      // kindergarten or none (the district, within its scope).
      let code: String? = caller.role.isDistrict ? (request.kindergartenCode.isEmpty ? nil : request.kindergartenCode) : caller.kindergarten?.rawValue
      let record = try await tenancy.registry.createExport(
        ExportRecord(
          kindergartenCode: code, ownershipScope: code == nil ? caller.scope.ownershipFilter?.rawValue : nil, purpose: purpose,
          recipient: recipient, fields: fields, fullRequested: full, requestedBy: caller.username, requestedRole: caller.role.rawValue,
          requestedAt: tenancy.now()))
      AuditTargets.add("export:\(record.id)")
      return proto(record)
    }
  }

  /// The office that decides this export, and the kindergarten's ownership.
  func approver(of record: ExportRecord) async throws -> Role {
    var ownership: Ownership?
    if let code = record.kindergartenCode { ownership = try await tenancy.registry.kindergarten(code)?.ownership }
    return ExportRules.approver(requestedBy: Role(rawValue: record.requestedRole) ?? .districtAdmin, kindergartenOwnership: ownership)
  }

  func decideExport(request: Pemis_V1_DecideExportRequest, context: ServerContext) async throws -> Pemis_V1_Export {
    try await handling {
      let caller = try Caller.required()
      guard let record = try await tenancy.registry.exportRequest(request.id) else {
        throw RPCError(code: .notFound, message: "id: no export '\(request.id)'")
      }
      let approver = try await approver(of: record)
      guard caller.role == approver else {
        throw RPCError(
          code: .permissionDenied,
          message: "id: export \(record.id) is decided by the \(approver.rawValue) (Art. 20: the next higher education authority), not by \(caller.role.rawValue)")
      }
      guard caller.username != record.requestedBy else {
        throw RPCError(code: .permissionDenied, message: "id: nobody approves their own export")
      }
      let note = request.note.trimmingCharacters(in: .whitespacesAndNewlines)
      guard note.count <= 300 else { throw RPCError(code: .invalidArgument, message: "note: at most 300 characters") }
      if !request.approve {
        guard !note.isEmpty else { throw RPCError(code: .invalidArgument, message: "note: a rejection says why") }
        let rejected = try await tenancy.registry.rejectExport(record.id, note: note, by: caller.username, role: caller.role, at: tenancy.now())
        AuditTargets.add("export:\(record.id) rejected")
        return proto(rejected)
      }
      let full = try ExportField.parse(request.fullFields, field: "full_fields")
      if let extra = full.first(where: { !record.fullRequestedList.contains($0) }) {
        throw RPCError(code: .invalidArgument, message: "full_fields: \(extra.rawValue) was not asked for in full")
      }
      let (file, rows) = try await produce(record, full: Set(full))
      let approved = try await tenancy.registry.approveExport(
        record.id, fullApproved: full, note: note.isEmpty ? nil : note, file: file, rows: rows, by: caller.username, role: caller.role,
        at: tenancy.now())
      AuditTargets.add("export:\(record.id) approved")
      if !full.isEmpty { AuditTargets.add("personal-data:" + full.map(\.rawValue).joined(separator: "+")) }
      return proto(approved)
    }
  }

  /// The file: one row per child in the kindergarten (enrolled or being transferred out), a
  /// pseudonym of this export and the kindergarten first, then the fields in the order asked,
  /// de-identified except those approved in full.
  func produce(_ record: ExportRecord, full: Set<ExportField>) async throws -> (Data, Int) {
    let fields = record.fieldList
    let today = tenancy.today
    var codes: [String]
    if let code = record.kindergartenCode {
      codes = [code]
    } else {
      let ownership = record.ownershipScope.flatMap(Ownership.init(rawValue:))
      codes = try await tenancy.registry.kindergartens(ownership: ownership, offset: 0, limit: Int.max).kindergartens.map(\.code)
    }
    var rows: [[String]] = []
    for code in codes {
      let shard = try await tenancy.shards.shard(try InstitutionCode(validating: code))
      var offset = 0
      while true {
        let (page, _) = try await shard.children(classId: nil, classes: nil, offset: offset, limit: 1000)
        for row in page where row.state == .enrolled || row.state == .pendingTransferOut {
          // A pseudonym for this export only: the file cannot be joined to lists by reference.
          let pseudonym = tenancy.registry.childReferences.pseudonym(row.recordNumber, export: record.id)
          rows.append(
            [pseudonym, code]
              + fields.map { $0.value(of: row.data, classID: row.classId, state: row.state.rawValue, full: full.contains($0), on: today) })
          guard rows.count <= ExportRules.maxRows else {
            throw RPCError(code: .resourceExhausted, message: "id: more than \(ExportRules.maxRows) children; ask for one kindergarten at a time")
          }
        }
        if page.count < 1000 { break }
        offset += page.count
      }
    }
    let header = ["pseudonym", "kindergarten"] + fields.map { full.contains($0) ? $0.rawValue : $0.deidentifiedHeader }
    return (Data(ExportRules.csv(header: header, rows: rows).utf8), rows.count)
  }

  func listExports(request: Pemis_V1_ListExportsRequest, context: ServerContext) async throws -> Pemis_V1_ListExportsResponse {
    try await handling {
      let caller = try Caller.required()
      let page = try Page(request.page)
      var state: ExportState?
      if !request.state.isEmpty {
        guard let value = ExportState(rawValue: request.state) else {
          throw RPCError(code: .invalidArgument, message: "state: must be one of \(ExportState.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        state = value
      }
      try await tenancy.registry.expireExports(at: tenancy.now())
      let code: String?? = caller.role.isDistrict ? (request.kindergartenCode.isEmpty ? nil : .some(request.kindergartenCode)) : .some(caller.kindergarten?.rawValue)
      let (exports, total) = try await tenancy.registry.exports(
        kindergartenCode: code, requestedBy: nil, ownership: caller.scope.ownershipFilter, state: state, offset: page.offset, limit: page.limit)
      return .with {
        $0.exports = exports.map(proto)
        $0.page = page.info(total: total, returned: exports.count)
      }
    }
  }

  func downloadExport(request: Pemis_V1_DownloadExportRequest, context: ServerContext) async throws -> Pemis_V1_ExportFile {
    try await handling {
      let caller = try Caller.required()
      guard let record = try await tenancy.registry.exportRequest(request.id) else {
        throw RPCError(code: .notFound, message: "id: no export '\(request.id)'")
      }
      guard record.requestedBy == caller.username else {
        throw RPCError(code: .permissionDenied, message: "id: export \(record.id) is downloaded only by the account that asked for it")
      }
      let downloaded = try await tenancy.registry.downloadExport(record.id, at: tenancy.now())
      // Logged with the approver's name and the file's hash.
      AuditTargets.add("export:\(record.id) approved by \(downloaded.decidedBy ?? "")")
      AuditTargets.add("sha256:\(downloaded.sha256 ?? "")")
      return .with {
        $0.export = proto(downloaded)
        $0.fileName = "\(record.id).csv"
        $0.content = downloaded.file ?? Data()
      }
    }
  }
}

