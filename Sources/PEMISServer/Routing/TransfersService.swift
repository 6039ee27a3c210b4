internal import Foundation
internal import GRPCCore
internal import PEMISDomain
internal import PEMISProto
internal import PEMISRouting
internal import PEMISStore
internal import SwiftProtobuf

/// `pemis.v1.Transfers`: the transfer saga of the routing layer, for the two kindergartens.
struct TransfersService: Pemis_V1_Transfers.SimpleServiceProtocol {
  let tenancy: Tenancy
  var router: Router { tenancy.router }

  func proto(_ t: TransferRecord) -> Pemis_V1_Transfer {
    .with {
      $0.id = t.id
      $0.recordNumber = IDDocuments.mask(t.recordNumber)
      $0.childRef = tenancy.registry.childReferences.reference(t.recordNumber)
      $0.fromKindergartenCode = t.fromCode
      $0.toKindergartenCode = t.toCode
      if let applied = CalendarDate(iso: t.appliedOn) { $0.appliedOn = applied.proto }
      $0.state = t.state.rawValue
      $0.requestedBy = t.requestedBy
      $0.requestedAt = t.requestedAt
      $0.classID = t.classId ?? ""
      $0.decidedBy = t.decidedBy ?? ""
      $0.decidedAt = t.decidedAt ?? 0
      $0.reason = t.reason ?? ""
    }
  }

  /// The acting kindergarten (the interceptor held the caller to it).
  func code(_ requested: String) throws -> (String, Caller) {
    let caller = try Caller.required()
    return (try tenancy.requestedKindergarten(requested, caller: caller).rawValue, caller)
  }

  func transferOut(request: Pemis_V1_TransferOutRequest, context: ServerContext) async throws -> Pemis_V1_Transfer {
    try await handling {
      let (code, caller) = try code(request.kindergartenCode)
      let destination = try InstitutionCode(validating: request.toKindergartenCode).rawValue
      let applied = try tenancy.pastDate(request.appliedOn, field: "applied_on")
      if !request.transferID.isEmpty && !Router.validTransferID(request.transferID) {
        throw RPCError(code: .invalidArgument, message: "transfer_id: \"T\" and 6-40 letters, digits or '-'")
      }
      let shard = try await tenancy.shards.shard(try InstitutionCode(validating: code))
      let number = try await tenancy.recordNumber(request.recordNumber, in: shard)
      let transfer = try await router.transferOut(
        from: code, recordNumber: number, to: destination, appliedOn: applied, id: request.transferID.isEmpty ? nil : request.transferID,
        by: caller.username)
      AuditTargets.add("transfer:\(transfer.id)")
      AuditTargets.add("child:" + tenancy.registry.childReferences.reference(number))
      return proto(transfer)
    }
  }

  func getTransferArchive(request: Pemis_V1_GetTransferArchiveRequest, context: ServerContext) async throws -> Pemis_V1_TransferArchive {
    try await handling {
      let (code, _) = try code(request.kindergartenCode)
      var documentKey: DocumentKey?
      if !request.idDocumentNumber.isEmpty {
        guard let type = IDDocumentType(rawValue: request.idDocumentType.isEmpty ? "resident_id" : request.idDocumentType) else {
          throw RPCError(code: .invalidArgument, message: "id_document_type: must be one of \(IDDocumentType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        documentKey = DocumentKey(type: type, number: request.idDocumentNumber)
      }
      guard !request.recordNumber.isEmpty || documentKey != nil else {
        throw RPCError(code: .invalidArgument, message: "record_number: give the record number or the ID document")
      }
      let found = try await router.archiveForReceiver(
        at: code, recordNumber: request.recordNumber.isEmpty ? nil : request.recordNumber.uppercased(), documentKey: documentKey)
      AuditTargets.add("transfer:\(found.transfer.id)")
      AuditTargets.add("child:" + tenancy.registry.childReferences.reference(found.child.recordNumber))
      // The receiver's view (``ChildView/receiver``): the rest arrives with the transfer.
      return .with {
        $0.transfer = proto(found.transfer)
        $0.child = ChildRecordsService.proto(found.child, view: .receiver, references: tenancy.registry.childReferences)
      }
    }
  }

  func transferIn(request: Pemis_V1_TransferInRequest, context: ServerContext) async throws -> Pemis_V1_Transfer {
    try await handling {
      let (code, caller) = try code(request.kindergartenCode)
      let transfer = try await router.transferIn(
        request.transferID, at: code, classId: request.classID.isEmpty ? nil : request.classID, by: caller.username)
      AuditTargets.add("transfer:\(transfer.id)")
      return proto(transfer)
    }
  }

  func cancelTransfer(request: Pemis_V1_TransferActionRequest, context: ServerContext) async throws -> Pemis_V1_Transfer {
    try await handling {
      let (code, caller) = try code(request.kindergartenCode)
      let transfer = try await router.cancel(request.transferID, at: code, by: caller.username)
      AuditTargets.add("transfer:\(transfer.id)")
      return proto(transfer)
    }
  }

  func declineTransfer(request: Pemis_V1_TransferActionRequest, context: ServerContext) async throws -> Pemis_V1_Transfer {
    try await handling {
      let (code, caller) = try code(request.kindergartenCode)
      let reason = request.reason.trimmingCharacters(in: .whitespacesAndNewlines)
      guard !reason.isEmpty, reason.count <= 200 else {
        throw RPCError(code: .invalidArgument, message: "reason: a decline says why, at most 200 characters")
      }
      let transfer = try await router.decline(request.transferID, at: code, reason: reason, by: caller.username)
      AuditTargets.add("transfer:\(transfer.id)")
      return proto(transfer)
    }
  }

  func abortTransfer(request: Pemis_V1_AbortTransferRequest, context: ServerContext) async throws -> Pemis_V1_Transfer {
    try await handling {
      let caller = try Caller.required()
      let reason = request.reason.trimmingCharacters(in: .whitespacesAndNewlines)
      guard !reason.isEmpty, reason.count <= 200 else {
        throw RPCError(code: .invalidArgument, message: "reason: an abort says why, at most 200 characters")
      }
      guard Router.validTransferID(request.transferID) else {
        throw RPCError(code: .invalidArgument, message: "transfer_id: \"T\" and 6-40 letters, digits or '-'")
      }
      let transfer = try await router.abort(request.transferID, reason: reason, by: caller.username)
      AuditTargets.add("transfer:\(transfer.id) \(transfer.state.rawValue)")
      return proto(transfer)
    }
  }

  func listTransfers(request: Pemis_V1_ListTransfersRequest, context: ServerContext) async throws -> Pemis_V1_ListTransfersResponse {
    try await handling {
      let caller = try Caller.required()
      let page = try Page(request.page)
      var state: TransferState?
      if !request.state.isEmpty {
        state = TransferState(rawValue: request.state)
        if state == nil { throw RPCError(code: .invalidArgument, message: "state: one of \(TransferState.allCases.map(\.rawValue).joined(separator: ", "))") }
      }
      var code: String? = request.kindergartenCode.isEmpty ? caller.kindergarten?.rawValue : request.kindergartenCode
      if caller.scope == .ownKindergarten { code = caller.kindergarten?.rawValue }
      var scoped: Set<String>?
      if code == nil, let ownership = caller.scope.ownershipFilter {
        scoped = Set(try await tenancy.registry.kindergartens(ownership: ownership, offset: 0, limit: 100_000).kindergartens.map(\.code))
      }
      let (transfers, total) = try await tenancy.registry.transfers(
        kindergarten: code, state: state, ownershipCodes: scoped, offset: page.offset, limit: page.limit)
      return .with {
        $0.transfers = transfers.map(proto)
        $0.page = page.info(total: total, returned: transfers.count)
      }
    }
  }
}
