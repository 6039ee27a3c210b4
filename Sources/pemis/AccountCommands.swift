import ArgumentParser
import Foundation
import GRPCCore
import PEMISClient
import PEMISProto
import PEMISWire
import SwiftProtobuf

/// `pemis account …`: district administrators for every account, principals for their staff.
struct AccountCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "account",
    abstract: "Manage accounts.",
    subcommands: [Create.self, Disable.self, Enable.self, Reset.self, Unseal.self, List.self])

  /// Runs one of the single-account actions (disable, enable, unseal) and shows the result.
  static func act(
    _ connection: ConnectionOptions, _ username: String,
    _ call: @Sendable (Pemis_V1_Accounts.Client<PEMISWireClientTransport>, Pemis_V1_AccountRequest) async throws -> Pemis_V1_Account
  ) async throws {
    try await runReportingFailure {
      let account = try await connection.withSession { client in
        try await call(Pemis_V1_Accounts.Client(wrapping: client), .with { $0.username = username })
      }
      try show(account, json: connection.json)
    }
  }

  static func show(_ a: Pemis_V1_Account, json: Bool) throws {
    if json { return try printJSON(message: a) }
    printTable(["username", "name", "role", "kindergarten", "state"], [[a.username, a.displayName, roleName(a.role), a.kindergartenCode, stateName(a.state)]])
  }

  struct Create: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create an account; prints its one-time password once.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Username: 3-32 of a-z 0-9 . _ -, starting with a letter.") var username: String
    @Option(help: "preschool_office, vocational_office, planning_office, finance_office, district_admin, principal, administrator, class_leader or finance_staff.")
    var role: String
    @Option(help: "Kindergarten institution code (kindergarten roles; a principal's own by default).") var kindergarten: String = ""
    @Option(help: "The person's name.") var name: String
    @Option(name: .customLong("class"), help: "Class a class leader may act on (repeatable).") var classes: [String] = []

    func run() async throws {
      guard let role = parseRole(role) else { throw ValidationError("--role '\(role)' is not a role") }
      try await runReportingFailure {
        let response = try await connection.withSession { client in
          try await Pemis_V1_Accounts.Client(wrapping: client).createAccount(.with {
            $0.username = username
            $0.role = role
            $0.kindergartenCode = kindergarten
            $0.displayName = name
            $0.classes = classes
          })
        }
        if connection.json { return try printJSON(message: response) }
        try AccountCommand.show(response.account, json: false)
        print("one-time password (shown only now): \(response.oneTimePassword)")
      }
    }
  }

  struct Disable: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Disable an account and end its sessions.")
    @OptionGroup var connection: ConnectionOptions
    @Argument var username: String
    func run() async throws { try await AccountCommand.act(connection, username) { try await $0.disableAccount($1) } }
  }

  struct Enable: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Enable a disabled account.")
    @OptionGroup var connection: ConnectionOptions
    @Argument var username: String
    func run() async throws { try await AccountCommand.act(connection, username) { try await $0.enableAccount($1) } }
  }

  struct Reset: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Issue a new one-time password (also clears a lockout).")
    @OptionGroup var connection: ConnectionOptions
    @Argument var username: String
    func run() async throws {
      try await runReportingFailure {
        let response = try await connection.withSession { client in
          try await Pemis_V1_Accounts.Client(wrapping: client).resetPassword(.with { $0.username = username })
        }
        if connection.json { return try printJSON(message: response) }
        try AccountCommand.show(response.account, json: false)
        print("one-time password (shown only now): \(response.oneTimePassword)")
      }
    }
  }

  struct Unseal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Reopen an account sealed after six months unused (district administrators).")
    @OptionGroup var connection: ConnectionOptions
    @Argument var username: String
    func run() async throws { try await AccountCommand.act(connection, username) { try await $0.unsealAccount($1) } }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List a kindergarten's accounts, or the district's.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Kindergarten institution code; empty: yours, or the district accounts.") var kindergarten: String = ""
    func run() async throws {
      try await runReportingFailure {
        let response = try await connection.withSession { client in
          try await Pemis_V1_Accounts.Client(wrapping: client).listAccounts(.with {
            $0.kindergartenCode = kindergarten
            $0.page.pageSize = 500
          })
        }
        if connection.json { return try printJSON(message: response) }
        printTable(
          ["username", "name", "role", "kindergarten", "state", "last login"],
          response.accounts.map {
            [$0.username, $0.displayName, roleName($0.role), $0.kindergartenCode, stateName($0.state), formatTime($0.lastLoginAt)]
          })
      }
    }
  }
}

/// `pemis kindergarten …`.
struct KindergartenCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "kindergarten", abstract: "Registered kindergartens.", subcommands: [Show.self, List.self])

  struct Show: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a kindergarten (yours by default) and its shard.")
    @OptionGroup var connection: ConnectionOptions
    @Argument(help: "Institution code.") var code: String = ""
    func run() async throws {
      try await runReportingFailure {
        let k = try await connection.withSession { client in
          try await Pemis_V1_Kindergartens.Client(wrapping: client).getKindergarten(.with { $0.kindergartenCode = code })
        }
        if connection.json { return try printJSON(message: k) }
        print("\(k.institutionCode)  \(k.name)  \(ownershipName(k.ownership))  active since \(formatTime(k.activatedAt))")
        print("application \(k.applicationID); shard schema v\(k.shardSchemaVersion), created \(formatTime(k.shardCreatedAt))")
      }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the kindergartens in your scope.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "public or private.") var ownership: String?
    func run() async throws {
      let filter: Pemis_V1_Ownership = ownership == "public" ? .public : ownership == "private" ? .private : .unspecified
      if let ownership, filter == .unspecified { throw ValidationError("--ownership must be public or private, got '\(ownership)'") }
      try await runReportingFailure {
        let response = try await connection.withSession { client in
          try await Pemis_V1_Kindergartens.Client(wrapping: client).listKindergartens(.with {
            $0.ownership = filter
            $0.page.pageSize = 500
          })
        }
        if connection.json { return try printJSON(message: response) }
        printTable(
          ["code", "name", "ownership", "active since"],
          response.kindergartens.map { [$0.institutionCode, $0.name, ownershipName($0.ownership), formatTime($0.activatedAt)] })
        print(response.page.totalCount == 1 ? "1 kindergarten" : "\(response.page.totalCount) kindergartens")
      }
    }
  }
}

/// `pemis audit query`.
struct AuditQueryCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "audit", abstract: "Read the audit log (district supervision).", subcommands: [Query.self])

  struct Query: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Audit log entries by kindergarten, account and time.")
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "Institution code.") var kindergarten: String = ""
    @Option(help: "Username.") var user: String = ""
    @Option(help: "From this time (YYYY-MM-DD or YYYY-MM-DDTHH:MM, Beijing time).") var from: String?
    @Option(help: "Up to this time.") var to: String?
    @Option(help: "Entries per page, 1-500.") var limit: Int32 = 100
    @Option(help: "The page a previous query named (\"next page: --page-token …\").") var pageToken: String = ""
    @Flag(help: "Oldest entries first (by default the newest come first).") var oldestFirst = false

    func run() async throws {
      let fromMs = try from.map { try parseTime($0, "--from") } ?? 0
      let toMs = try to.map { try parseTime($0, "--to") } ?? 0
      try await runReportingFailure {
        let response = try await connection.withSession { client in
          try await Pemis_V1_Audit.Client(wrapping: client).queryAuditLog(.with {
            $0.kindergartenCode = kindergarten
            $0.username = user
            $0.fromMs = fromMs
            $0.toMs = toMs
            $0.page.pageSize = limit
            $0.page.pageToken = pageToken
            $0.oldestFirst = oldestFirst
          })
        }
        if connection.json { return try printJSON(message: response) }
        printTable(
          ["#", "time", "user", "role", "kindergarten", "method", "targets", "result"],
          response.entries.map {
            [
              String($0.sequence), formatTime($0.atMs / 1000), $0.username, roleName($0.role), $0.kindergartenCode,
              $0.method.replacingOccurrences(of: "/pemis.v1.", with: ""), $0.targets.joined(separator: ","), $0.result,
            ]
          })
        print("showing \(response.entries.count) of \(response.page.totalCount) entries, \(oldestFirst ? "oldest" : "newest") first")
        if !response.page.nextPageToken.isEmpty { print("next page: --page-token \(response.page.nextPageToken)") }
      }
    }
  }
}

/// Milliseconds since 1970 for a Beijing-time date or date-time.
func parseTime(_ text: String, _ flag: String) throws -> Int64 {
  let formatter = DateFormatter()
  formatter.timeZone = TimeZone(identifier: "Asia/Shanghai")
  for format in ["yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd HH:mm", "yyyy-MM-dd"] {
    formatter.dateFormat = format
    if let date = formatter.date(from: text) { return Int64(date.timeIntervalSince1970 * 1000) }
  }
  throw ValidationError("\(flag) must be like 2026-09-01 or 2026-09-01T08:30, got '\(text)'")
}
