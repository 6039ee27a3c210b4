import ArgumentParser
import Foundation
import GRPCCore
import PEMISClient
import PEMISProto
import PEMISWire
import SwiftProtobuf

/// `pemis child …`: child records (enrollment and class placement so far).
struct ChildCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "child", abstract: "Child records: enrollment, classes, promotion, graduation, leaving, changes, the monthly audit, the paper archive, import.",
    subcommands: [
      Enroll.self, Import.self, List.self, Show.self, Assign.self, Promote.self, Graduate.self, Leave.self, Depart.self, Update.self,
      RequestChange.self, Changes.self, Decide.self, Month.self, Archive.self,
    ])

  static func client(_ client: GRPCClient<PEMISWireClientTransport>) -> Pemis_V1_ChildRecords.Client<PEMISWireClientTransport> {
    .init(wrapping: client)
  }

  static func rows(_ children: [Pemis_V1_Child]) {
    printTable(
      ["record number", "reference", "name", "gender", "born", "document", "class", "state"],
      children.map { [$0.recordNumber, $0.childRef, $0.name, $0.gender, formatDate($0.birthDate), "\($0.idDocumentType) \($0.idDocumentNumber)", $0.classID, $0.state] })
  }

  struct Enroll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Enroll a child from the signed information template.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Option var name: String
    @Option(help: "male or female.") var gender: String
    @Option(help: "YYYY-MM-DD.") var born: String
    @Option(help: "resident_id, hmt_residence_permit, foreign_permanent_residence, travel_permit, passport or other.") var idType: String = "resident_id"
    @Option(help: "Document number; empty with --id-type other.") var idNumber: String = ""
    @Option var nationality: String = "CHN"
    @Option(help: "Two-digit ethnicity code.") var ethnicity: String = "01"
    @Option(help: "Six-digit division code of the place of birth.") var birthPlace: String
    @Option(help: "Six-digit division code of the household register.") var household: String
    @Option(help: "agricultural, non_agricultural, resident or none.") var householdType: String = "resident"
    @Option(help: "none, hong_kong, macao, taiwan, overseas_chinese or foreign.") var hmt: String = "none"
    @Option(help: "healthy, chronic_condition, disability or other.") var health: String = "healthy"
    @Flag var onlyChild = false
    @Option(help: "NAME:RELATION:PHONE; relation father, mother, grandparent or other (repeatable).") var guardian: [String]
    @Option(help: "Entry date, YYYY-MM-DD.") var entered: String
    @Option(help: "Class to place the child in (C0001).") var classID: String = ""
    @Flag(help: "A mid-term joiner.") var midTerm = false

    func run() async throws {
      let birth = try parseDate(born, "--born")
      let entry = try parseDate(entered, "--entered")
      let guardians = try guardian.map(parseGuardian)
      try await runReportingFailure {
        let child = try await connection.withSession { client in
          try await ChildCommand.client(client).enrollChild(.with {
            $0.kindergartenCode = target.kindergarten
            $0.classID = classID
            $0.midTerm = midTerm
            $0.child = .with {
              $0.name = name
              $0.gender = gender
              $0.birthDate = birth
              $0.idDocumentType = idType
              $0.idDocumentNumber = idNumber
              $0.nationality = nationality
              $0.ethnicity = ethnicity
              $0.birthPlace = birthPlace
              $0.householdRegister = household
              $0.householdType = householdType
              $0.hmtStatus = hmt
              $0.health = health
              $0.onlyChild = onlyChild
              $0.guardians = guardians
              $0.entryDate = entry
            }
          })
        }
        if connection.json { return try printJSON(message: child) }
        ChildCommand.rows([child])
      }
    }
  }

  struct List: AsyncParsableCommand {
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Option(help: "Only this class.") var classID: String = ""
    func run() async throws {
      try await runReportingFailure {
        let r = try await connection.withSession { client in
          try await ChildCommand.client(client).listChildren(.with {
            $0.kindergartenCode = target.kindergarten
            $0.classID = classID
            $0.page.pageSize = 500
          })
        }
        if connection.json { return try printJSON(message: r) }
        ChildCommand.rows(r.children)
        print("\(r.children.count) of \(r.page.totalCount) children")
      }
    }
  }

  struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "One child (the full ID number for principals and administrators; the read is audited).")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument(help: "Record number, or the child's reference (C-…) from a list.") var recordNumber: String
    func run() async throws {
      try await runReportingFailure {
        let c = try await connection.withSession { client in
          try await ChildCommand.client(client).getChild(.with {
            $0.kindergartenCode = target.kindergarten
            $0.recordNumber = recordNumber
          })
        }
        if connection.json { return try printJSON(message: c) }
        ChildCommand.rows([c])
        print("nationality \(c.nationality), ethnicity \(c.ethnicity)\(c.onlyChild ? ", only child" : ""); entered \(formatDate(c.entryDate))")
        // What the caller's role may not see is not sent (docs/TENANCY.md, "Who may see what").
        if !c.householdRegister.isEmpty || !c.birthPlace.isEmpty {
          print("born in \(c.birthPlace), household \(c.householdRegister) (\(c.householdType)), \(c.hmtStatus)")
        }
        if !c.health.isEmpty { print("health: \(c.health)") }
        for g in c.guardians { print("guardian: \(g.name) (\(g.relation)) \(g.phone)") }
      }
    }
  }

  struct Assign: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Place a child in a class, or move it.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument(help: "Record number, or the child's reference (C-…) from a list.") var recordNumber: String
    @Option(help: "Class id (C0001).") var classID: String
    func run() async throws {
      try await runReportingFailure {
        let c = try await connection.withSession { client in
          try await ChildCommand.client(client).assignClass(.with {
            $0.kindergartenCode = target.kindergarten
            $0.recordNumber = recordNumber
            $0.classID = classID
          })
        }
        if connection.json { return try printJSON(message: c) }
        ChildCommand.rows([c])
      }
    }
  }

  /// `child promote` and `child graduate` share their options.
  struct ClassStepOptions: ParsableArguments {
    @Option(help: "Class id (C0001).") var classID: String
    @Option(help: "Effective date, YYYY-MM-DD (default today).") var on: String?
    @Flag(help: "Only show what would happen.") var preview = false
    func request(_ target: DataCommand.Target) throws -> Pemis_V1_ClassStepRequest {
      let date = try on.map { try parseDate($0, "--on") }
      return .with {
        $0.kindergartenCode = target.kindergarten
        $0.classID = classID
        $0.preview = preview
        if let date { $0.effectiveOn = date }
      }
    }
  }

  static func showStep(_ r: Pemis_V1_ClassStepResponse, verb: String, json: Bool) throws {
    if json { return try printJSON(message: r) }
    print("\(r.preview ? "would \(verb)" : verb + "d"): class \(r.classID) → \(r.grade) \(r.schoolYear), \(r.children.count) children")
    rows(r.children)
  }

  struct Promote: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Promote a whole class (small → middle → large); --preview first.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @OptionGroup var step: ClassStepOptions
    func run() async throws {
      let request = try step.request(target)
      try await runReportingFailure {
        let r = try await connection.withSession { try await ChildCommand.client($0).promoteClass(request) }
        try ChildCommand.showStep(r, verb: "promote", json: connection.json)
      }
    }
  }

  struct Graduate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Graduate a whole large (or mixed-age) class; --preview first.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @OptionGroup var step: ClassStepOptions
    func run() async throws {
      let request = try step.request(target)
      try await runReportingFailure {
        let r = try await connection.withSession { try await ChildCommand.client($0).graduateClass(request) }
        try ChildCommand.showStep(r, verb: "graduate", json: connection.json)
      }
    }
  }

  struct Leave: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A child leaves the kindergarten (not a transfer).")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument(help: "Record number, or the child's reference (C-…) from a list.") var recordNumber: String
    @Option(help: "Why.") var reason: String
    @Option(help: "YYYY-MM-DD (default today).") var on: String?
    func run() async throws {
      let date = try on.map { try parseDate($0, "--on") }
      try await runReportingFailure {
        let c = try await connection.withSession { client in
          try await ChildCommand.client(client).leaveChild(.with {
            $0.kindergartenCode = target.kindergarten
            $0.recordNumber = recordNumber
            $0.reason = reason
            if let date { $0.leftOn = date }
          })
        }
        if connection.json { return try printJSON(message: c) }
        ChildCommand.rows([c])
      }
    }
  }

  struct Depart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Record an accidental departure (injury or death); closes the record.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var target: DataCommand.Target
    @Argument(help: "Record number, or the child's reference (C-…) from a list.") var recordNumber: String
    @Option(help: "injury or death.") var kind: String
    @Option(help: "The certificate or report (Art. 17(3)).") var evidence: String
    @Option(help: "YYYY-MM-DD (default today).") var on: String?
    func run() async throws {
      let date = try on.map { try parseDate($0, "--on") }
      try await runReportingFailure {
        let c = try await connection.withSession { client in
          try await ChildCommand.client(client).recordAccidentalDeparture(.with {
            $0.kindergartenCode = target.kindergarten
            $0.recordNumber = recordNumber
            $0.kind = kind
            $0.evidence = evidence
            if let date { $0.occurredOn = date }
          })
        }
        if connection.json { return try printJSON(message: c) }
        ChildCommand.rows([c])
      }
    }
  }
}
