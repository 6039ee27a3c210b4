import ArgumentParser
import Foundation
import GRPCCore
import PEMISClient
import PEMISProto
import PEMISWire
import SwiftProtobuf

/// `pemis transfer …`: transfers between kindergartens (Art. 16).
struct TransferCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "transfer", abstract: "Transfers between kindergartens: out, archive, in, cancel, decline, list.",
    subcommands: [Out.self, Archive.self, In.self, Cancel.self, Decline.self, Abort.self, List.self])

  static func client(_ client: GRPCClient<PEMISWireClientTransport>) -> Pemis_V1_Transfers.Client<PEMISWireClientTransport> {
    .init(wrapping: client)
  }

  static func rows(_ transfers: [Pemis_V1_Transfer]) {
    printTable(
      ["transfer", "record number", "reference", "from", "to", "applied", "state", "requested by", "class", "decided by", "reason"],
      transfers.map {
        [
          $0.id, $0.recordNumber, $0.childRef, $0.fromKindergartenCode, $0.toKindergartenCode, formatDate($0.appliedOn), $0.state,
          "\($0.requestedBy) \(formatTime($0.requestedAt))", $0.classID, $0.decidedBy, $0.reason,
        ]
      })
  }

  struct Out: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Transfer a child out to another kindergarten, on the parent's application.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument(help: "Record number, or the child's reference (C-…) from a list.") var recordNumber: String
    @Option(help: "The receiving kindergarten's institution code.") var to: String
    @Option(help: "When the parent applied, YYYY-MM-DD (default today).") var applied: String?
    @Option(help: "A transfer id of your own (T…), so a retry finds the same transfer.") var id: String = ""
    func run() async throws {
      let date = try applied.map { try parseDate($0, "--applied") }
      try await runReportingFailure {
        let t = try await connection.withSession { client in
          try await TransferCommand.client(client).transferOut(.with {
            $0.kindergartenCode = target.kindergarten
            $0.recordNumber = recordNumber
            $0.toKindergartenCode = to
            $0.transferID = id
            if let date { $0.appliedOn = date }
          })
        }
        if connection.json { return try printJSON(message: t) }
        print("transfer \(t.id): \(t.state); \(t.toKindergartenCode) takes the child in with `pemis transfer in \(t.id) --class-id …`")
        TransferCommand.rows([t])
      }
    }
  }

  struct Archive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "The receiving kindergarten reads the child's electronic archive (by record number or ID document).")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Option(help: "Record number.") var recordNumber: String = ""
    @Option(help: "ID document number (instead of the record number).") var idNumber: String = ""
    @Option(help: "ID document type.") var idType: String = "resident_id"
    func run() async throws {
      try await runReportingFailure {
        let a = try await connection.withSession { client in
          try await TransferCommand.client(client).getTransferArchive(.with {
            $0.kindergartenCode = target.kindergarten
            $0.recordNumber = recordNumber
            $0.idDocumentNumber = idNumber
            $0.idDocumentType = idType
          })
        }
        if connection.json { return try printJSON(message: a) }
        TransferCommand.rows([a.transfer])
        ChildCommand.rows([a.child])
        printTable(
          ["when", "by", "field", "old", "new"], a.history.map { [formatTime($0.changedAt), $0.changedBy, $0.field, $0.oldValue, $0.newValue] })
      }
    }
  }

  struct In: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Take a transferred child in, placing it in a class.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument(help: "Transfer id.") var id: String
    @Option(help: "Class id (C0001).") var classID: String = ""
    func run() async throws {
      try await runReportingFailure {
        let t = try await connection.withSession { client in
          try await TransferCommand.client(client).transferIn(.with {
            $0.kindergartenCode = target.kindergarten
            $0.transferID = id
            $0.classID = classID
          })
        }
        if connection.json { return try printJSON(message: t) }
        TransferCommand.rows([t])
      }
    }
  }

  struct Cancel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The sender cancels a transfer before the transfer-in.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument(help: "Transfer id.") var id: String
    func run() async throws {
      try await runReportingFailure {
        let t = try await connection.withSession { client in
          try await TransferCommand.client(client).cancelTransfer(.with {
            $0.kindergartenCode = target.kindergarten
            $0.transferID = id
          })
        }
        if connection.json { return try printJSON(message: t) }
        TransferCommand.rows([t])
      }
    }
  }

  struct Decline: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The receiver declines a transfer, saying why.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument(help: "Transfer id.") var id: String
    @Option(help: "Why.") var reason: String
    func run() async throws {
      try await runReportingFailure {
        let t = try await connection.withSession { client in
          try await TransferCommand.client(client).declineTransfer(.with {
            $0.kindergartenCode = target.kindergarten
            $0.transferID = id
            $0.reason = reason
          })
        }
        if connection.json { return try printJSON(message: t) }
        TransferCommand.rows([t])
      }
    }
  }

  struct Abort: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "The Preschool Education Office ends a transfer that cannot go on, saying why.",
      discussion: "The child is enrolled at the sending kindergarten again; if the receiver already holds it, the transfer completes instead.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Transfer id.") var id: String
    @Option(help: "Why the office ends it.") var reason: String
    func run() async throws {
      try await runReportingFailure {
        let t = try await connection.withSession { client in
          try await TransferCommand.client(client).abortTransfer(.with {
            $0.transferID = id
            $0.reason = reason
          })
        }
        if connection.json { return try printJSON(message: t) }
        TransferCommand.rows([t])
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Transfers of a kindergarten (either side), or of the district.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Option(help: "Only this state (out: waiting for the receiver).") var state: String = ""
    func run() async throws {
      try await runReportingFailure {
        let r = try await connection.withSession { client in
          try await TransferCommand.client(client).listTransfers(.with {
            $0.kindergartenCode = target.kindergarten
            $0.state = state
            $0.page.pageSize = 500
          })
        }
        if connection.json { return try printJSON(message: r) }
        TransferCommand.rows(r.transfers)
        print("\(r.transfers.count) of \(r.page.totalCount) transfers")
      }
    }
  }
}

/// `pemis duplicates …`: the district duplicate check (查重).
struct DuplicatesCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "duplicates", abstract: "The duplicate check: sweep, cases, resolution, arbitration.",
    subcommands: [Sweep.self, List.self, Show.self, Resolve.self, Arbitrate.self])

  static func client(_ client: GRPCClient<PEMISWireClientTransport>) -> Pemis_V1_Duplicates.Client<PEMISWireClientTransport> {
    .init(wrapping: client)
  }

  static func rows(_ cases: [Pemis_V1_DuplicateCase]) {
    printTable(
      ["case", "kind", "key", "records", "state", "resolution", "evidence"],
      cases.map {
        ["\($0.id)", $0.kind, $0.key, $0.records.map { "\($0.kindergartenCode)/\($0.recordNumber) (\($0.childRef))" }.joined(separator: " "), $0.state, $0.resolution, $0.evidence]
      })
  }

  struct Sweep: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sweep the district for problem records; opens a case for each.")
    @OptionGroup var connection: ConnectionOptions
    func run() async throws {
      try await runReportingFailure {
        let r = try await connection.withSession { try await DuplicatesCommand.client($0).sweepDuplicates(.init()) }
        if connection.json { return try printJSON(message: r) }
        print("opened \(r.opened) cases; \(r.stillOpen) still open; \(r.resolved) resolved (problem gone)")
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Duplicate cases, by kindergarten and state.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Option(help: "open, evidence or resolved.") var state: String = ""
    func run() async throws {
      try await runReportingFailure {
        let r = try await connection.withSession { client in
          try await DuplicatesCommand.client(client).listCases(.with {
            $0.kindergartenCode = target.kindergarten
            $0.state = state
            $0.page.pageSize = 500
          })
        }
        if connection.json { return try printJSON(message: r) }
        DuplicatesCommand.rows(r.cases)
        print("\(r.cases.count) of \(r.page.totalCount) cases")
      }
    }
  }

  struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One case with its history.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument var id: Int64
    func run() async throws {
      try await runReportingFailure {
        let c = try await connection.withSession { client in
          try await DuplicatesCommand.client(client).getCase(.with {
            $0.kindergartenCode = target.kindergarten
            $0.id = id
          })
        }
        if connection.json { return try printJSON(message: c) }
        DuplicatesCommand.rows([c])
        printTable(["when", "action", "by", "kindergarten", "note"], c.events.map { [formatTime($0.at), $0.action, $0.actor, $0.kindergartenCode, $0.note] })
      }
    }
  }

  struct Resolve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Resolve a case: --delete RECORD (soft), --modified (after correcting the record), or --evidence TEXT.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument var id: Int64
    @Option(help: "Delete this record of yours (it stays visible).") var delete: String?
    @Flag(help: "The record was corrected (pemis child update / request-change).") var modified = false
    @Option(help: "Evidence from the parents that the records are right.") var evidence: String?
    func validate() throws {
      guard [delete != nil, modified, evidence != nil].filter({ $0 }).count == 1 else {
        throw ValidationError("give one of --delete RECORD, --modified, --evidence TEXT")
      }
    }
    func run() async throws {
      try await runReportingFailure {
        let c = try await connection.withSession { client in
          try await DuplicatesCommand.client(client).resolveCase(.with {
            $0.kindergartenCode = target.kindergarten
            $0.id = id
            $0.action = delete != nil ? "delete" : modified ? "modified" : "evidence"
            $0.recordNumber = delete ?? ""
            $0.evidence = evidence ?? ""
          })
        }
        if connection.json { return try printJSON(message: c) }
        DuplicatesCommand.rows([c])
      }
    }
  }

  struct Arbitrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Accept or reject a case's evidence (Preschool Education Office).")
    @OptionGroup var connection: ConnectionOptions
    @Argument var id: Int64
    @Flag(help: "Accept: the records stay as they are.") var accept = false
    @Option(help: "Reject, saying why: the kindergarten deletes or modifies.") var reject: String?
    func validate() throws {
      guard accept != (reject != nil) else { throw ValidationError("give --accept or --reject REASON") }
    }
    func run() async throws {
      try await runReportingFailure {
        let c = try await connection.withSession { client in
          try await DuplicatesCommand.client(client).arbitrateCase(.with {
            $0.id = id
            $0.accept = accept
            $0.note = reject ?? ""
          })
        }
        if connection.json { return try printJSON(message: c) }
        DuplicatesCommand.rows([c])
      }
    }
  }
}

/// `pemis district summary`: district oversight, counts only.
struct DistrictCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "district", abstract: "District oversight: counts across kindergartens, within your scope.", subcommands: [Summary.self])

  struct Summary: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Children by kindergarten, ownership, age on 1 September, grade, gender and ID document type; classes against the norms; staff; pending transfers; open duplicate cases.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Only these kindergartens (repeatable).") var kindergarten: [String] = []
    @Flag(help: "One row per kindergarten, with its classes.") var byKindergarten = false
    func run() async throws {
      try await runReportingFailure {
        let started = ContinuousClock.now
        let r = try await connection.withSession { client in
          try await Pemis_V1_District.Client(wrapping: client).getDistrictSummary(.with {
            $0.kindergartenCodes = kindergarten
            $0.byKindergarten = byKindergarten
          })
        }
        let elapsed = ContinuousClock.now - started
        if connection.json { return try printJSON(message: r) }
        func line(_ counts: [Pemis_V1_Count]) -> String { counts.map { "\($0.key) \($0.count)" }.joined(separator: ", ") }
        let t = r.total
        print("\(r.kindergartens) kindergartens, \(t.children) children (\(line(r.childrenByOwnership)))")
        print("by age on \(formatDate(r.agesOn)): \(t.byAge.map { "\($0.key) years \($0.count)" }.joined(separator: ", "))")
        print("by grade: \(line(t.byGrade))")
        print("by gender: \(line(t.byGender))")
        print("by ID document: \(line(t.byDocumentType))")
        print("classes: \(t.classes), \(t.classesOutsideNorm) outside the usual size for their grade")
        print("staff: \(line(t.staffByPost))")
        print("pending transfers: \(t.pendingTransfers); open duplicate cases: \(t.openDuplicateCases)")
        if byKindergarten {
          printTable(
            ["kindergarten", "name", "ownership", "children", "classes", "outside norm", "transfers", "cases"],
            r.rows.map {
              [
                $0.kindergartenCode, $0.name, $0.ownership, "\($0.counts.children)", "\($0.counts.classes)", "\($0.counts.classesOutsideNorm)",
                "\($0.counts.pendingTransfers)", "\($0.counts.openDuplicateCases)",
              ]
            })
        }
        print("(\(r.shardsRead) shards read, the rest cached; \(elapsed.formatted(.units(allowed: [.milliseconds]))))")
      }
    }
  }
}
