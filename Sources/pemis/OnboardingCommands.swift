import ArgumentParser
import Foundation
import GRPCCore
import PEMISClient
import PEMISProto
import SwiftProtobuf

/// `pemis onboarding …`: Appendix 1, step by step, for district staff.
struct OnboardingCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "onboarding",
    abstract: "Bring a kindergarten into PEMIS (district staff).",
    subcommands: [Submit.self, Review.self, Resubmit.self, Admit.self, Commit.self, IssueAccounts.self, Show.self, List.self])

  /// The paper application form's fields.
  struct FormOptions: ParsableArguments {
    @Option(help: "Kindergarten name, as on the licence.") var name: String
    @Option(help: "public or private.") var ownership: String
    @Option(help: "Licence number.") var licence: String
    @Option(help: "Address.") var address: String
    @Option(help: "Sponsor (举办者).") var sponsor: String
    @Option(help: "Approval date, YYYY-MM-DD.") var approved: String
    @Option(help: "Opening date, YYYY-MM-DD.") var opened: String
    @Option(help: "Number of children.") var children: Int32
    @Option(help: "Number of staff.") var staff: Int32
    @Option(help: "Premises: owned, rented or lent.") var property: String

    var form: Pemis_V1_ApplicationForm {
      get throws {
        guard let ownership = ["public": Pemis_V1_Ownership.public, "private": .private][ownership] else {
          throw ValidationError("--ownership must be public or private")
        }
        let approvalDate = try parseDate(approved, "--approved")
        let openingDate = try parseDate(opened, "--opened")
        return .with {
          $0.name = name
          $0.ownership = ownership
          $0.licenceNumber = licence
          $0.address = address
          $0.sponsor = sponsor
          $0.approvalDate = approvalDate
          $0.openingDate = openingDate
          $0.childrenCount = children
          $0.staffCount = staff
          $0.property = property
        }
      }
    }

    func validate() throws {
      _ = try parseDate(approved, "--approved")
      _ = try parseDate(opened, "--opened")
    }
  }

  static func show(_ application: Pemis_V1_Application, json: Bool) throws {
    if json { return try printJSON(message: application) }
    let f = application.form
    print("\(application.applicationID)  \(f.name)  \(ownershipName(f.ownership))  \(onboardingStateName(application.state))")
    if !application.institutionCode.isEmpty { print("institution code: \(application.institutionCode)") }
    if !application.returnReason.isEmpty { print("returned: \(application.returnReason)") }
    if application.hasCommitment {
      print("commitment: signed by \(application.commitment.signatory) on \(formatDate(application.commitment.signedOn))")
    }
    print("licence \(f.licenceNumber); \(f.address); sponsor \(f.sponsor); approved \(formatDate(f.approvalDate)), opened \(formatDate(f.openingDate)); \(f.childrenCount) children, \(f.staffCount) staff; premises \(f.property)")
    printTable(
      ["when", "step", "by", "role", "note"],
      application.history.map { [formatTime($0.at), $0.step, $0.actor, roleName($0.actorRole), $0.note] })
  }

  struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Enter an application from the paper form.")
    @OptionGroup var connection: ConnectionOptions
    @OptionGroup var form: FormOptions

    func run() async throws {
      let form = try form.form
      try await runReportingFailure {
        let application = try await connection.withSession { client in
          try await Pemis_V1_Onboarding.Client(wrapping: client).submitApplication(.with { $0.form = form })
        }
        try OnboardingCommand.show(application, json: connection.json)
      }
    }
  }

  struct Review: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Approve an application, or return it with a reason.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Application id.") var id: String
    @Flag(help: "Approve it.") var approve = false
    @Option(name: .customLong("return"), help: "Return it, with this reason.") var returnReason: String?

    func validate() throws {
      guard approve != (returnReason != nil) else { throw ValidationError("give either --approve or --return REASON") }
    }

    func run() async throws {
      try await runReportingFailure {
        let application = try await connection.withSession { client in
          try await Pemis_V1_Onboarding.Client(wrapping: client).reviewApplication(.with {
            $0.applicationID = id
            $0.approve = approve
            $0.reason = returnReason ?? ""
          })
        }
        try OnboardingCommand.show(application, json: connection.json)
      }
    }
  }

  struct Resubmit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Send a returned application back to review, corrected.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Application id.") var id: String
    @OptionGroup var form: FormOptions

    func run() async throws {
      let form = try form.form
      try await runReportingFailure {
        let application = try await connection.withSession { client in
          try await Pemis_V1_Onboarding.Client(wrapping: client).resubmitApplication(.with {
            $0.applicationID = id
            $0.form = form
          })
        }
        try OnboardingCommand.show(application, json: connection.json)
      }
    }
  }

  struct Admit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Admit to the statistics database and assign the institution code (Development Planning Office).")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Application id.") var id: String
    @Option(help: "Institution code: 10 digits starting with 1.") var code: String

    func run() async throws {
      try await runReportingFailure {
        let application = try await connection.withSession { client in
          try await Pemis_V1_Onboarding.Client(wrapping: client).admitKindergarten(.with {
            $0.applicationID = id
            $0.institutionCode = code
          })
        }
        try OnboardingCommand.show(application, json: connection.json)
      }
    }
  }

  struct Commit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Record the signed commitment letter.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Application id.") var id: String
    @Option(help: "Who signed (the principal).") var signatory: String
    @Option(help: "Signing date, YYYY-MM-DD.") var signed: String

    func run() async throws {
      let date = try parseDate(signed, "--signed")
      try await runReportingFailure {
        let application = try await connection.withSession { client in
          try await Pemis_V1_Onboarding.Client(wrapping: client).recordCommitment(.with {
            $0.applicationID = id
            $0.commitment = .with {
              $0.signatory = signatory
              $0.signedOn = date
            }
          })
        }
        try OnboardingCommand.show(application, json: connection.json)
      }
    }
  }

  struct IssueAccounts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "issue-accounts",
      abstract: "Issue the principal's audit account and the administrator's ordinary account; creates the shard.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Application id.") var id: String
    @Option(help: "Principal's username.") var principal: String
    @Option(help: "Principal's name.") var principalName: String
    @Option(help: "Administrator's username.") var administrator: String
    @Option(help: "Administrator's name.") var administratorName: String

    func run() async throws {
      try await runReportingFailure {
        let response = try await connection.withSession { client in
          try await Pemis_V1_Onboarding.Client(wrapping: client).issueAccounts(.with {
            $0.applicationID = id
            $0.principalUsername = principal
            $0.principalName = principalName
            $0.administratorUsername = administrator
            $0.administratorName = administratorName
          })
        }
        if connection.json { return try printJSON(message: response) }
        print("kindergarten \(response.application.institutionCode) \(response.application.form.name) is active")
        print("give each person their one-time password; it is shown only now and must be changed at first login:")
        printTable(
          ["username", "role", "one-time password"],
          [
            [response.principal.username, "principal (audit account)", response.principalOneTimePassword],
            [response.administrator.username, "administrator (ordinary account)", response.administratorOneTimePassword],
          ])
      }
    }
  }

  struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show an application and its history.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Application id.") var id: String

    func run() async throws {
      try await runReportingFailure {
        let application = try await connection.withSession { client in
          try await Pemis_V1_Onboarding.Client(wrapping: client).getApplication(.with { $0.applicationID = id })
        }
        try OnboardingCommand.show(application, json: connection.json)
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List applications in your scope.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Only this state: submitted, returned, approved, admitted, committed, active.") var state: String?

    func run() async throws {
      let states: [String: Pemis_V1_OnboardingState] = [
        "submitted": .submitted, "returned": .returned, "approved": .approved, "admitted": .admitted,
        "committed": .committed, "active": .active,
      ]
      let filter = try state.map { text -> Pemis_V1_OnboardingState in
        guard let value = states[text] else { throw ValidationError("--state must be one of \(states.keys.sorted().joined(separator: ", "))") }
        return value
      }
      try await runReportingFailure {
        let response = try await connection.withSession { client in
          try await Pemis_V1_Onboarding.Client(wrapping: client).listApplications(.with {
            if let filter { $0.state = filter }
            $0.page.pageSize = 500
          })
        }
        if connection.json { return try printJSON(message: response) }
        printTable(
          ["id", "name", "ownership", "state", "code"],
          response.applications.map {
            [$0.applicationID, $0.form.name, ownershipName($0.form.ownership), onboardingStateName($0.state), $0.institutionCode]
          })
      }
    }
  }
}

func parseDate(_ text: String, _ flag: String) throws -> Pemis_V1_Date {
  let parts = text.split(separator: "-").compactMap { Int32($0) }
  guard parts.count == 3 else { throw ValidationError("\(flag) must be a date like 2024-09-01, got '\(text)'") }
  return .with {
    $0.year = parts[0]
    $0.month = parts[1]
    $0.day = parts[2]
  }
}

func formatDate(_ date: Pemis_V1_Date) -> String {
  String(format: "%04d-%02d-%02d", date.year, date.month, date.day)
}
