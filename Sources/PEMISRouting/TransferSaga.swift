internal import Foundation
internal import Logging
public import PEMISDomain
public import PEMISStore

/// Transfers between kindergartens as a durable saga (docs/ROUTING.md). Each public step first
/// writes its intention to the registry (a compare-and-set on the transfer's state), then calls
/// ``drive(_:)``, which performs whatever the state still requires; every shard step is
/// idempotent and keyed by the transfer id, so recovery after a crash is the same `drive`.
extension Router {
  /// Transfer ids: "T" and 6-40 letters, digits or '-'. A client may choose its own, so that a
  /// retry after a lost answer finds the transfer it created.
  public static func validTransferID(_ id: String) -> Bool {
    id.count >= 7 && id.count <= 41 && id.first == "T" && id.dropFirst().allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
  }

  /// The sender's transfer-out: the child becomes pending transfer-out; the receiver's 3 working
  /// days (Art. 16) start.
  public func transferOut(
    from code: String, recordNumber: String, to destination: String, appliedOn: CalendarDate, id requested: String?, by: String
  ) async throws -> TransferRecord {
    guard destination != code else {
      throw StoreError(.invalidArgument, "to_kindergarten_code: a transfer goes to another kindergarten")
    }
    guard try await registry.kindergarten(destination) != nil else {
      throw StoreError(.notFound, "to_kindergarten_code: no active kindergarten \(destination)")
    }
    let id = requested ?? "T" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16)
    let source = try await shard(code)
    guard let child = try await source.child(recordNumber) else {
      throw StoreError(.notFound, "record_number: no child \(IDDocuments.mask(recordNumber)) here")
    }
    let created = TransferRecord(
      id: id, recordNumber: recordNumber, fromCode: code, toCode: destination, appliedOn: appliedOn, requestedBy: by, at: now())
    // A retry with the same id finds its transfer (the child may be pending already).
    if child.transferId != id { _ = try ChildEvent.requestTransferOut.apply(to: child.state) }
    try TimeOrder.checkEvent(appliedOn, field: ChildEvent.requestTransferOut.dateField, entered: child.data.entryDate, today: today)
    if let existing = try await registry.createTransfer(created) {
      guard existing.recordNumber == recordNumber && existing.fromCode == code && existing.toCode == destination else {
        throw StoreError(.alreadyExists, "transfer_id: \(id) is another transfer")
      }
      return try await drive(existing)
    }
    return try await drive(created)
  }

  /// The receiver takes the child in, placing it in one of its classes. Everything the step
  /// needs is checked before the intention is written — the sender still holds the child for
  /// this transfer, the class exists, and the child's identity is not enrolled here already —
  /// so the transfer never waits on a step that cannot succeed.
  public func transferIn(_ id: String, at code: String, classId: String?, by: String) async throws -> TransferRecord {
    let transfer = try await transferFor(id, side: code, receiving: true)
    if transfer.state == .out {
      let destination = try await shard(code)
      if let classId {
        guard try await destination.classExists(classId) else {
          throw StoreError(.failedPrecondition, "class_id: no class \(classId); create the class first (Art. 15(6))")
        }
      }
      let child = try await senderHolds(transfer)
      var arriving = Self.indexRow(child, code: code, at: now())
      arriving.state = .enrolled
      if let conflict = try await registry.transferConflict(arriving, from: transfer.fromCode) {
        throw IdentityConflict(field: "transfer_id", conflict: conflict, here: code).storeError
      }
    }
    let accepting = try await registry.advanceTransfer(id, from: [.out], to: .accepting, at: now()) {
      $0.classId = classId
      $0.decidedBy = by
      $0.decidedAt = self.now()
      $0.reason = nil
    }
    return try await drive(accepting)
  }

  /// The sender's row of the child, if it is pending this transfer there; otherwise why not.
  func senderHolds(_ transfer: TransferRecord) async throws -> ChildRow {
    guard let child = try await shard(transfer.fromCode).child(transfer.recordNumber),
      child.state == .pendingTransferOut, child.transferId == transfer.id
    else {
      throw StoreError(
        .failedPrecondition, "transfer_id: the sending kindergarten no longer holds the child for transfer \(transfer.id)")
    }
    return child
  }

  /// The sender cancels before the receiver took the child in (also when the child leaves or
  /// departs while pending: `reason` says so).
  public func cancel(_ id: String, at code: String, reason: String? = nil, by: String) async throws -> TransferRecord {
    _ = try await transferFor(id, side: code, receiving: false)
    let cancelling = try await registry.advanceTransfer(id, from: [.out], to: .cancelling, at: now()) {
      $0.decidedBy = by
      $0.decidedAt = self.now()
      if let reason { $0.reason = reason }
    }
    return try await drive(cancelling)
  }

  /// The receiver declines, saying why.
  public func decline(_ id: String, at code: String, reason: String, by: String) async throws -> TransferRecord {
    _ = try await transferFor(id, side: code, receiving: true)
    let declining = try await registry.advanceTransfer(id, from: [.out], to: .declining, at: now()) {
      $0.decidedBy = by
      $0.decidedAt = self.now()
      $0.reason = reason
    }
    return try await drive(declining)
  }

  /// The Preschool Education Office ends a transfer that cannot go on, saying why: the child is
  /// enrolled at the sender again — unless the receiver already holds it, when the transfer
  /// completes instead (the child is never left nowhere).
  public func abort(_ id: String, reason: String, by: String) async throws -> TransferRecord {
    guard try await registry.transfer(id) != nil else { throw StoreError(.notFound, "transfer_id: no transfer \(id)") }
    let aborting = try await registry.advanceTransfer(id, from: [.requested, .out, .accepting], to: .aborting, at: now()) {
      $0.decidedBy = by
      $0.decidedAt = self.now()
      $0.reason = reason
    }
    return try await drive(aborting)
  }

  /// The transfer, if `code` is the side `side` names; otherwise as if it did not exist.
  func transferFor(_ id: String, side code: String, receiving: Bool) async throws -> TransferRecord {
    guard let transfer = try await registry.transfer(id), transfer.fromCode == code || transfer.toCode == code else {
      throw StoreError(.notFound, "transfer_id: no transfer \(id) of this kindergarten")
    }
    guard (receiving ? transfer.toCode : transfer.fromCode) == code else {
      throw StoreError(.permissionDenied, "transfer_id: only the \(receiving ? "receiving" : "sending") kindergarten does this")
    }
    return transfer
  }

  /// Performs what the transfer's state still requires, step by step, until it rests (`out`) or
  /// ends. Safe to repeat at any point: that is how recovery works.
  @discardableResult
  public func drive(_ id: String) async throws -> TransferRecord {
    guard let transfer = try await registry.transfer(id) else { throw StoreError(.notFound, "transfer_id: no transfer \(id)") }
    return try await drive(transfer)
  }

  /// `drive` for a transfer just read or written (saves reading it again).
  func drive(_ current: TransferRecord) async throws -> TransferRecord {
    var transfer = current
    let id = transfer.id
    let at = now()
    switch transfer.state {
    case .requested:
      try faults.hit("transfer.requested")
      let source = try await shard(transfer.fromCode)
      let row: ChildRow
      do {
        row = try await source.markPendingTransferOut(transfer.recordNumber, transfer: id, to: transfer.toCode, by: transfer.requestedBy, at: at)
      } catch let error as DomainError {
        // The child was no longer enrolled: nothing happened anywhere.
        try await registry.advanceTransfer(id, from: [.requested], to: .failed, at: at) { $0.reason = error.message }
        throw error
      } catch let error as StoreError where error.kind == .notFound {
        try await registry.advanceTransfer(id, from: [.requested], to: .failed, at: at) { $0.reason = error.message }
        throw error
      }
      try faults.hit("transfer.marked")
      let applied = CalendarDate(iso: transfer.appliedOn) ?? today
      transfer = try await registry.advanceTransfer(
        id, from: [.requested], to: .out, at: at, index: [Self.indexRow(row, code: transfer.fromCode, at: at)],
        obligations: [
          ObligationRecord(
            kindergartenCode: transfer.fromCode, kind: .transferOut, subject: "transfer:\(id)", triggeredOn: applied,
            dueOn: try? ObligationKind.transferOut.due(after: applied, in: calendar), createdAt: at),
          // The parent now applies to the receiver, whose 3 working days start.
          ObligationRecord(
            kindergartenCode: transfer.toCode, kind: .transferIn, subject: "transfer:\(id)", triggeredOn: today,
            dueOn: try? ObligationKind.transferIn.due(after: today, in: calendar), createdAt: at),
        ],
        complete: [(.transferOut, transfer.fromCode, "transfer:\(id)")], by: transfer.requestedBy, on: today)
      return transfer

    case .accepting:
      let source = try await shard(transfer.fromCode)
      let destination = try await shard(transfer.toCode)
      let by = transfer.decidedBy ?? "recovery"
      let arrived: ChildRow
      if let held = try await destination.child(transfer.recordNumber), held.transferId == id, held.state == .enrolled {
        arrived = held  // received before a crash
      } else {
        do {
          // The sender's state first: the receiver's shard is written only for a child the
          // sender still holds for this transfer.
          _ = try await senderHolds(transfer)
          // A child coming back brings only what happened elsewhere since it left.
          let known = try await destination.lastHistoryTime(transfer.recordNumber)
          let archive = try await source.archive(transfer.recordNumber, since: known.map { $0 + 1 })
          try faults.hit("transfer.accepting")
          arrived = try await destination.receiveTransfer(
            archive.child.data, recordNumber: transfer.recordNumber, history: archive.child.transferId == id ? archive.history : [],
            transfer: id, from: transfer.fromCode, classId: transfer.classId, by: by, at: at)
        } catch let error as StoreError where error.kind.isPermanent {
          // A step that cannot succeed is not retried forever: the transfer goes back to waiting
          // for the receiver, with the reason, and the receiver chooses again (or declines).
          logger.warning("transfer-in refused; the transfer waits for the receiver again", metadata: ["transfer.id": "\(id)", "reason": "\(error.message)"])
          try await registry.advanceTransfer(id, from: [.accepting], to: .out, at: at) { $0.reason = error.message }
          throw error
        }
      }
      try faults.hit("transfer.received")
      _ = try await source.completeTransferOut(transfer.recordNumber, transfer: id, on: today, by: by, at: at)
      try faults.hit("transfer.sent")
      return try await registry.advanceTransfer(
        id, from: [.accepting, .aborting], to: .completed, at: at, index: [Self.indexRow(arrived, code: transfer.toCode, at: at)],
        complete: [(.transferIn, transfer.toCode, "transfer:\(id)")], by: by, on: today)

    case .aborting:
      let destination = try await shard(transfer.toCode)
      if let held = try await destination.child(transfer.recordNumber), held.transferId == id, held.state.isActive {
        // The receiver already holds the child: finishing is the only way not to lose it.
        var forward = transfer
        forward.state = .accepting
        return try await drive(forward)
      }
      let source = try await shard(transfer.fromCode)
      let by = transfer.decidedBy ?? "recovery"
      let row = try await source.revertPendingTransferOut(
        transfer.recordNumber, transfer: id, why: "aborted: \(transfer.reason ?? "")", by: by, at: at)
      try faults.hit("transfer.reverted")
      return try await registry.advanceTransfer(
        id, from: [.aborting], to: .aborted, at: at,
        index: row.state == .enrolled && row.transferId == nil ? [Self.indexRow(row, code: transfer.fromCode, at: at)] : [],
        complete: [(.transferIn, transfer.toCode, "transfer:\(id)"), (.transferOut, transfer.fromCode, "transfer:\(id)")], by: by, on: today)

    case .cancelling, .declining:
      let source = try await shard(transfer.fromCode)
      let by = transfer.decidedBy ?? "recovery"
      let cancelled = transfer.state == .cancelling
      let row = try await source.revertPendingTransferOut(
        transfer.recordNumber, transfer: id, why: cancelled ? "cancelled" + (transfer.reason.map { ": \($0)" } ?? "") : "declined: \(transfer.reason ?? "")",
        by: by, at: at)
      try faults.hit("transfer.reverted")
      return try await registry.advanceTransfer(
        id, from: [transfer.state], to: cancelled ? .cancelled : .declined, at: at,
        index: row.state == .enrolled ? [Self.indexRow(row, code: transfer.fromCode, at: at)] : [],
        complete: [(.transferIn, transfer.toCode, "transfer:\(id)")], by: by, on: today)

    case .out, .completed, .cancelled, .declined, .failed, .aborted:
      return transfer
    }
  }

  /// What the receiver reads before taking a child in: the child's electronic archive at the
  /// sender, found by record number or ID document, only while a transfer to it is open.
  public func archiveForReceiver(
    at code: String, recordNumber: String?, documentKey: DocumentKey?
  ) async throws -> (transfer: TransferRecord, child: ChildRow, history: [HistoryRecord]) {
    guard let transfer = try await registry.openTransfer(to: code, recordNumber: recordNumber, documentKey: documentKey?.rawValue) else {
      throw StoreError(.notFound, "record_number: no child transferred out to this kindergarten by that number or document")
    }
    let archive = try await shard(transfer.fromCode).archive(transfer.recordNumber)
    return (transfer, archive.child, archive.history)
  }
}
