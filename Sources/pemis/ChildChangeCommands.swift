import ArgumentParser
import Foundation
import GRPCCore
import PEMISClient
import PEMISProto
import PEMISWire
import SwiftProtobuf

/// `pemis child update|request-change|changes|decide`: changes after enrollment.
extension ChildCommand {
  struct Update: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Change a child's other (non-key) information; each change is kept in the history.",
      discussion: "Key information (name, gender, birth date, ID document) changes only through `pemis child request-change`.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument(help: "Record number, or the child's reference (C-…) from a list.") var recordNumber: String
    @Option var nationality: String?
    @Option var ethnicity: String?
    @Option var birthPlace: String?
    @Option(help: "Six-digit division code of the household register.") var household: String?
    @Option var householdType: String?
    @Option var hmt: String?
    @Option var health: String?
    @Option(help: "yes or no.") var onlyChild: String?
    @Option(help: "NAME:RELATION:PHONE, repeatable; replaces all guardians.") var guardian: [String] = []
    @Option(help: "Entry date, YYYY-MM-DD.") var entered: String?
    @Option(help: "When the change happened, YYYY-MM-DD (default today).") var on: String?

    func run() async throws {
      var fields: [String] = []
      var child = Pemis_V1_Child()
      if let nationality { fields.append("nationality"); child.nationality = nationality }
      if let ethnicity { fields.append("ethnicity"); child.ethnicity = ethnicity }
      if let birthPlace { fields.append("birth_place"); child.birthPlace = birthPlace }
      if let household { fields.append("household_register"); child.householdRegister = household }
      if let householdType { fields.append("household_type"); child.householdType = householdType }
      if let hmt { fields.append("hmt_status"); child.hmtStatus = hmt }
      if let health { fields.append("health"); child.health = health }
      if let onlyChild {
        guard ["yes", "no"].contains(onlyChild) else { throw ValidationError("--only-child takes yes or no") }
        fields.append("only_child")
        child.onlyChild = onlyChild == "yes"
      }
      if !guardian.isEmpty { fields.append("guardians"); child.guardians = try guardian.map(parseGuardian) }
      if let entered { fields.append("entry_date"); child.entryDate = try parseDate(entered, "--entered") }
      guard !fields.isEmpty else { throw ValidationError("name at least one field to change") }
      let date = try on.map { try parseDate($0, "--on") }
      try await runReportingFailure {
        let c = try await connection.withSession { client in
          try await ChildCommand.client(client).updateChild(.with {
            $0.kindergartenCode = target.kindergarten
            $0.recordNumber = recordNumber
            $0.child = child
            $0.fields = fields
            if let date { $0.changedOn = date }
          })
        }
        if connection.json { return try printJSON(message: c) }
        print("changed \(fields.joined(separator: ", "))")
        ChildCommand.rows([c])
      }
    }
  }

  static func keyChangeRows(_ changes: [Pemis_V1_KeyChange]) {
    printTable(
      ["id", "record number", "changes", "evidence", "state", "requested by", "decided by", "note"],
      changes.map { k in
        [
          "\(k.id)", k.recordNumber, k.changes.map { "\($0.field): \($0.oldValue) → \($0.newValue)" }.joined(separator: "; "), k.evidence,
          k.state, "\(k.requestedBy) \(formatTime(k.requestedAt))", k.decidedBy.isEmpty ? "" : "\(k.decidedBy) \(formatTime(k.decidedAt))",
          k.decisionNote,
        ]
      })
  }

  struct RequestChange: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "request-change",
      abstract: "Request a change of key information (name, gender, birth date, ID document), with its evidence; the principal decides.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument(help: "Record number, or the child's reference (C-…) from a list.") var recordNumber: String
    @Option var name: String?
    @Option(help: "male or female.") var gender: String?
    @Option(help: "YYYY-MM-DD.") var born: String?
    @Option var idType: String?
    @Option var idNumber: String?
    @Option(help: "The written request and its proof.") var evidence: String
    @Option(help: "When a parent signed the new template, YYYY-MM-DD.") var signed: String

    func run() async throws {
      let birth = try born.map { try parseDate($0, "--born") }
      let signedOn = try parseDate(signed, "--signed")
      try await runReportingFailure {
        let k = try await connection.withSession { client in
          try await ChildCommand.client(client).requestKeyChange(.with {
            $0.kindergartenCode = target.kindergarten
            $0.recordNumber = recordNumber
            if let name { $0.name = name; $0.fields.append("name") }
            if let gender { $0.gender = gender; $0.fields.append("gender") }
            if let birth { $0.birthDate = birth; $0.fields.append("birth_date") }
            if let idType { $0.idDocumentType = idType; $0.fields.append("id_document_type") }
            if let idNumber { $0.idDocumentNumber = idNumber; $0.fields.append("id_document_number") }
            $0.evidence = evidence
            $0.templateSignedOn = signedOn
          })
        }
        if connection.json { return try printJSON(message: k) }
        print("request #\(k.id) waits for the principal (pemis child decide \(k.id) --approve)")
        ChildCommand.keyChangeRows([k])
      }
    }
  }

  struct Changes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Key-information change requests, newest first.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Option(help: "pending, approved or rejected (default all).") var state: String = ""
    func run() async throws {
      try await runReportingFailure {
        let r = try await connection.withSession { client in
          try await ChildCommand.client(client).listKeyChanges(.with {
            $0.kindergartenCode = target.kindergarten
            $0.state = state
            $0.page.pageSize = 500
          })
        }
        if connection.json { return try printJSON(message: r) }
        ChildCommand.keyChangeRows(r.changes)
        print("\(r.changes.count) of \(r.page.totalCount) requests")
      }
    }
  }

  struct Decide: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Approve (apply) or reject a key-information change request (principal).")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument(help: "Request id.") var id: Int64
    @Flag(help: "Approve and apply the change.") var approve = false
    @Option(help: "Reject, saying why.") var reject: String?
    func validate() throws {
      guard approve != (reject != nil) else { throw ValidationError("give --approve or --reject REASON") }
    }
    func run() async throws {
      try await runReportingFailure {
        let k = try await connection.withSession { client in
          try await ChildCommand.client(client).decideKeyChange(.with {
            $0.kindergartenCode = target.kindergarten
            $0.id = id
            $0.approve = approve
            $0.note = reject ?? ""
          })
        }
        if connection.json { return try printJSON(message: k) }
        print("request #\(k.id) \(k.state)")
        ChildCommand.keyChangeRows([k])
      }
    }
  }

  /// `pemis child month 2026-10 [--sign-off]`: the principal's monthly audit.
  struct Month: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "A month's changes for the principal's monthly audit (Art. 11); --sign-off signs it off.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument(help: "YYYY-MM.") var month: String
    @Flag(help: "Sign the month off (principal).") var signOff = false
    @Option(help: "A note with the sign-off.") var note: String = ""
    func run() async throws {
      try await runReportingFailure {
        let m = try await connection.withSession { client in
          let children = ChildCommand.client(client)
          if signOff {
            return try await children.signOffMonth(.with {
              $0.kindergartenCode = target.kindergarten
              $0.month = month
              $0.note = note
            })
          }
          return try await children.getMonthlyAudit(.with {
            $0.kindergartenCode = target.kindergarten
            $0.month = month
            $0.page.pageSize = 500
          })
        }
        if connection.json { return try printJSON(message: m) }
        if !signOff {
          printTable(
            ["record", "field", "old", "new", "by", "at"],
            m.changes.map { [$0.record, $0.field, $0.oldValue, $0.newValue, $0.changedBy, formatTime($0.changedAt)] })
        }
        let due = m.hasDueOn ? ", due \(formatDate(m.dueOn))" : ""
        print("\(m.month): \(m.page.totalCount) changes, \(m.keyChangesDecided) key-information requests decided; \(m.status.replacingOccurrences(of: "_", with: " "))\(due)")
        if m.status == "signed_off" { print("signed off by \(m.signedOffBy) at \(formatTime(m.signedOffAt))\(m.note.isEmpty ? "" : ": \(m.note)")") }
      }
    }
  }

  /// `pemis child archive record|list`: the paper archive.
  struct Archive: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "The paper archive: the signed template, checked against the household register; shredded one year after leaving.",
      subcommands: [Record.self, List.self, Shred.self])

    static func rows(_ entries: [Pemis_V1_PaperArchiveEntry]) {
      printTable(
        ["record number", "reference", "name", "state", "parent signed", "checked by", "left", "shred after", ""],
        entries.map { e in
          [
            e.recordNumber, e.childRef, e.name, e.state, e.recorded ? formatDate(e.parentSignedOn) : "(none)",
            e.recorded ? "\(e.checkedBy) \(formatDate(e.checkedOn))" : "", e.hasLeftOn ? formatDate(e.leftOn) : "",
            e.hasShredAfter ? formatDate(e.shredAfter) : "",
            e.hasShreddedOn ? "destroyed \(formatDate(e.shreddedOn)) by \(e.shreddedBy)" : e.shreddable ? "may be shredded" : "",
          ]
        })
    }

    struct Shred: AsyncParsableCommand {
      static let configuration = CommandConfiguration(
        abstract: "Record that a child's paper template was destroyed (the shred list), from one year after the child left.")
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: DataCommand.Target
      @Argument(help: "Record number, or the child's reference (C-…) from a list.") var recordNumber: String
      @Option(help: "Who destroyed it.") var by: String
      @Option(help: "When, YYYY-MM-DD (default today).") var on: String?
      func run() async throws {
        let date = try on.map { try parseDate($0, "--on") }
        try await runReportingFailure {
          let e = try await connection.withSession { client in
            try await ChildCommand.client(client).recordPaperShredded(.with {
              $0.kindergartenCode = target.kindergarten
              $0.recordNumber = recordNumber
              $0.shreddedBy = by
              if let date { $0.shreddedOn = date }
            })
          }
          if connection.json { return try printJSON(message: e) }
          Archive.rows([e])
        }
      }
    }

    struct Record: AsyncParsableCommand {
      static let configuration = CommandConfiguration(abstract: "Record when a parent signed the template and who checked it.")
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: DataCommand.Target
      @Argument(help: "Record number, or the child's reference (C-…) from a list.") var recordNumber: String
      @Option(help: "When a parent signed the template, YYYY-MM-DD.") var signed: String
      @Option(help: "Who checked it against the household register.") var checkedBy: String
      @Option(help: "When, YYYY-MM-DD (default today).") var checkedOn: String?
      func run() async throws {
        let signedOn = try parseDate(signed, "--signed")
        let checked = try checkedOn.map { try parseDate($0, "--checked-on") }
        try await runReportingFailure {
          let e = try await connection.withSession { client in
            try await ChildCommand.client(client).recordPaperArchive(.with {
              $0.kindergartenCode = target.kindergarten
              $0.recordNumber = recordNumber
              $0.parentSignedOn = signedOn
              $0.checkedBy = checkedBy
              if let checked { $0.checkedOn = checked }
            })
          }
          if connection.json { return try printJSON(message: e) }
          Archive.rows([e])
        }
      }
    }

    struct List: AsyncParsableCommand {
      static let configuration = CommandConfiguration(abstract: "The paper archive (all, missing, shreddable or shredded).")
      @OptionGroup var connection: ConnectionOptions
      @OptionGroup var target: DataCommand.Target
      @Option(help: "all, missing, shreddable (may be destroyed) or shredded (the shred list).") var filter: String = "all"
      func run() async throws {
        try await runReportingFailure {
          let r = try await connection.withSession { client in
            try await ChildCommand.client(client).listPaperArchive(.with {
              $0.kindergartenCode = target.kindergarten
              $0.filter = filter
              $0.page.pageSize = 500
            })
          }
          if connection.json { return try printJSON(message: r) }
          Archive.rows(r.entries)
          print("\(r.entries.count) of \(r.page.totalCount) children")
        }
      }
    }
  }
}

func parseGuardian(_ text: String) throws -> Pemis_V1_Guardian {
  let parts = text.split(separator: ":").map(String.init)
  guard parts.count == 3 else { throw ValidationError("--guardian takes NAME:RELATION:PHONE, got '\(text)'") }
  return .with {
    $0.name = parts[0]
    $0.relation = parts[1]
    $0.phone = parts[2]
  }
}
