internal import Foundation
internal import GRDB
public import PEMISDomain

/// What an operator watches in the registry (the server's metrics read it on every scrape): one
/// read transaction of counts, no row of any child or account, so a scrape stays quick however
/// many kindergartens the district has.
public struct RegistryOperationalState: Sendable, Equatable {
  /// Transfers in each state (every state present, zero when none).
  public var transfersByState: [TransferState: Int]
  /// How long the oldest transfer mid-step (``TransferState/isInFlight``) has been in that step,
  /// in seconds; 0 when none is. Steps take milliseconds: a large value means recovery cannot
  /// finish it.
  public var oldestInFlightTransferAge: Int64
  /// How long the oldest transfer waiting for its receiver (`out`) has waited, in seconds; 0 when
  /// none does. Waiting is normal (Art. 16 gives the receiver three working days).
  public var oldestAwaitingTransferAge: Int64
  /// District index reservations not yet released.
  public var openReservations: Int
  /// Duplicate cases open.
  public var openDuplicateCases: Int
  /// Obligations past their due date and not done, by kind (kinds with none are left out).
  public var overdueObligations: [ObligationKind: Int]
}

extension Registry {
  /// The counts of ``RegistryOperationalState`` as of `now` (seconds since 1970) and `today`.
  public func operationalState(now: Int64, today: CalendarDate) async throws -> RegistryOperationalState {
    let todayText = today.description
    return try await writer.read { db in
      var byState = Dictionary(uniqueKeysWithValues: TransferState.allCases.map { ($0, 0) })
      for row in try Row.fetchAll(db, sql: "SELECT state, count(*) AS n FROM transfer GROUP BY state") {
        if let state = TransferState(rawValue: row["state"]) { byState[state] = row["n"] }
      }
      let inFlight = TransferState.allCases.filter(\.isInFlight).map(\.rawValue)
      let oldestInFlight = try Int64.fetchOne(
        db, sql: "SELECT min(updatedAt) FROM transfer WHERE state IN (\(inFlight.map { _ in "?" }.joined(separator: ", ")))",
        arguments: StatementArguments(inFlight))
      let oldestAwaiting = try Int64.fetchOne(
        db, sql: "SELECT min(updatedAt) FROM transfer WHERE state = ?", arguments: [TransferState.out.rawValue])
      var overdue: [ObligationKind: Int] = [:]
      for row in try Row.fetchAll(
        db, sql: "SELECT kind, count(*) AS n FROM obligation WHERE doneAt IS NULL AND dueOn < ? GROUP BY kind",
        arguments: [todayText])
      {
        if let kind = ObligationKind(rawValue: row["kind"]) { overdue[kind] = row["n"] }
      }
      return RegistryOperationalState(
        transfersByState: byState,
        oldestInFlightTransferAge: oldestInFlight.map { max(0, now - $0) } ?? 0,
        oldestAwaitingTransferAge: oldestAwaiting.map { max(0, now - $0) } ?? 0,
        openReservations: try Int.fetchOne(db, sql: "SELECT count(*) FROM index_reservation") ?? 0,
        openDuplicateCases: try Int.fetchOne(
          db, sql: "SELECT count(*) FROM duplicate_case WHERE state = ?", arguments: [CaseState.open.rawValue]) ?? 0,
        overdueObligations: overdue)
    }
  }
}

/// What `pemis-server status` reads of a data directory, without writing to it (a running server
/// may have it open; the operator may not be its owner's user).
public struct DataDirectoryStatus: Sendable {
  /// Bytes and files under the data directory.
  public var bytes: Int64
  public var files: Int
  public var kindergartens: Int
  /// The audit chain's last entry (0 and the genesis hash when empty).
  public var auditEntries: Int64
  public var auditHead: String
  /// The transfer longest mid-step: its id and when it entered the step (seconds since 1970).
  public var oldestInFlightTransfer: (id: String, since: Int64)?
  public var awaitingReceiver: Int
}

extension Registry {
  /// Reads `directory`'s registry read-only, and sizes the directory.
  public static func status(ofDataDirectory directory: String) throws -> DataDirectoryStatus {
    let path = (directory as NSString).appendingPathComponent("registry.sqlite")
    guard FileManager.default.fileExists(atPath: path) else {
      throw StoreError(.notFound, "\(directory) holds no registry (is it a PEMIS data directory? `pemis-server init` makes one)")
    }
    var bytes: Int64 = 0
    var files = 0
    if let walker = FileManager.default.enumerator(atPath: directory) {
      while let file = walker.nextObject() as? String {
        let attributes = try? FileManager.default.attributesOfItem(atPath: (directory as NSString).appendingPathComponent(file))
        guard attributes?[.type] as? FileAttributeType == .typeRegular else { continue }
        files += 1
        bytes += (attributes?[.size] as? NSNumber)?.int64Value ?? 0
      }
    }
    var configuration = Configuration()
    configuration.readonly = true
    configuration.label = "status"
    let name = "the district registry"
    do {
      let queue = try DatabaseQueue(path: path, configuration: configuration)
      defer { try? queue.close() }
      return try queue.read { db in
        let head = try Row.fetchOne(db, sql: "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        let inFlight = TransferState.allCases.filter(\.isInFlight).map(\.rawValue)
        let oldest = try Row.fetchOne(
          db,
          sql: "SELECT id, updatedAt FROM transfer WHERE state IN (\(inFlight.map { _ in "?" }.joined(separator: ", "))) ORDER BY updatedAt LIMIT 1",
          arguments: StatementArguments(inFlight))
        return DataDirectoryStatus(
          bytes: bytes, files: files, kindergartens: try Int.fetchOne(db, sql: "SELECT count(*) FROM kindergarten") ?? 0,
          auditEntries: head?["seq"] ?? 0, auditHead: head?["hash"] ?? Registry.genesisHash,
          oldestInFlightTransfer: oldest.map { (id: $0["id"], since: $0["updatedAt"]) },
          awaitingReceiver: try Int.fetchOne(db, sql: "SELECT count(*) FROM transfer WHERE state = ?", arguments: [TransferState.out.rawValue]) ?? 0)
      }
    } catch {
      throw StoreError.mapped(error, in: name)
    }
  }
}
