import ArgumentParser
import Foundation
import GRPCCore
import PEMISClient
import PEMISProto
import PEMISWire
import SwiftProtobuf

/// `pemis deadline …`: obligations under the regulation's time limits.
struct DeadlineCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "deadline",
    abstract: "Obligations under the regulation's time limits (working days).",
    subcommands: [List.self, Overdue.self, Complete.self, StartTerm.self])

  static func show(_ response: Pemis_V1_ListObligationsResponse, json: Bool) throws {
    if json { return try printJSON(message: response) }
    print("as of \(formatDate(response.today)) (Beijing)")
    printTable(
      ["kindergarten", "obligation", "about", "rule", "from", "due", "status", "done by"],
      response.obligations.map {
        [
          $0.kindergartenCode, $0.kind, $0.subject, "\($0.article), \($0.workingDays) wd", formatDate($0.triggeredOn),
          $0.hasDueOn ? formatDate($0.dueOn) : "(awaits calendar)", $0.status, $0.doneBy,
        ]
      })
    print("\(response.obligations.count) of \(response.page.totalCount)")
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A kindergarten's obligations (yours by default).")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Institution code (district accounts).") var kindergarten: String = ""
    @Option(help: "open, due, overdue or done; all when absent.") var status: String = ""
    func run() async throws {
      try await runReportingFailure {
        let response = try await connection.withSession { client in
          try await Pemis_V1_Deadlines.Client(wrapping: client).listObligations(.with {
            $0.kindergartenCode = kindergarten
            $0.status = status
            $0.page.pageSize = 500
          })
        }
        try DeadlineCommand.show(response, json: connection.json)
      }
    }
  }

  struct Overdue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Everything overdue in the kindergartens you oversee.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "public or private.") var ownership: String?
    func run() async throws {
      let filter: Pemis_V1_Ownership = ownership == "public" ? .public : ownership == "private" ? .private : .unspecified
      if ownership != nil, filter == .unspecified { throw ValidationError("--ownership must be public or private") }
      try await runReportingFailure {
        let response = try await connection.withSession { client in
          try await Pemis_V1_Deadlines.Client(wrapping: client).listOverdue(.with {
            $0.ownership = filter
            $0.page.pageSize = 500
          })
        }
        try DeadlineCommand.show(response, json: connection.json)
      }
    }
  }

  struct Complete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Declare an area entered (new kindergarten) or re-verified (this term): basic, classes, staff, finance.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "basic, classes, staff or finance.") var area: String
    func run() async throws {
      try await runReportingFailure {
        let response = try await connection.withSession { client in
          try await Pemis_V1_Deadlines.Client(wrapping: client).completeArea(.with { $0.area = area })
        }
        if connection.json { return try printJSON(message: response) }
        for o in response.completed {
          print("\(o.kind) \(o.subject): \(o.status)" + (o.hasDueOn ? " (due \(formatDate(o.dueOn)))" : ""))
        }
      }
    }
  }

  struct StartTerm: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "start-term",
      abstract: "Set a semester's start; every kindergarten then re-verifies its data within 3 working days.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Term name, like 2026-autumn.") var term: String
    @Option(help: "First day of the term, YYYY-MM-DD.") var on: String
    func run() async throws {
      let date = try parseDate(on, "--on")
      try await runReportingFailure {
        let response = try await connection.withSession { client in
          try await Pemis_V1_Deadlines.Client(wrapping: client).startTerm(.with {
            $0.term = term
            $0.startsOn = date
          })
        }
        if connection.json { return try printJSON(message: response) }
        print("term \(response.term) starts \(formatDate(response.startsOn)); \(response.kindergartens) kindergartens re-verify by \(formatDate(response.verificationDueOn))")
      }
    }
  }
}
