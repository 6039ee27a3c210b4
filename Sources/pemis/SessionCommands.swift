import ArgumentParser
import Foundation
import GRPCCore
import PEMISClient
import PEMISProto
import SwiftProtobuf

struct LoginCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "login",
    abstract: "Log in and keep the session for the next commands.",
    discussion: """
      Asks for the password (or reads it from standard input). After a one-time password it asks \
      for a new one at once. The session is kept in ~/.config/pemis/session.json, readable by you only.
      """)

  @OptionGroup var connection: ConnectionOptions
  @Option(name: [.customLong("user"), .short], help: "Your username.") var user: String

  func run() async throws {
    let address = try connection.address()
    // Decided before the password is read, and kept with the session for the next commands.
    let security = try connection.security(session: nil)
    let password = readSecret("password for \(user): ")
    try await runReportingFailure {
      let response = try await withPEMISClient(address, security: security) { client in
        try await Pemis_V1_Session.Client(wrapping: client).login(.with {
          $0.username = user
          $0.password = password
        })
      }
      try SessionStore.save(
        SavedSession(
          server: address.description, token: response.token, username: user, expiresAt: response.expiresAt,
          caFile: {
            // Absolute, so later commands find it from any directory.
            if case .tls(let caFile?) = security { return URL(fileURLWithPath: caFile).standardizedFileURL.path }
            return nil
          }(),
          plaintext: security == .plaintext))
      var account = response.account
      if response.passwordChangeRequired {
        print("this is a one-time password: choose your own (at least 10 characters, letters and digits)")
        let new = readSecret("new password: ")
        let again = readSecret("new password again: ")
        guard new == again else {
          FileHandle.standardError.write(Data("pemis: the two new passwords differ; run pemis password to try again\n".utf8))
          throw ExitCode(1)
        }
        account = try await withPEMISClient(address, token: response.token, security: security) { client in
          try await Pemis_V1_Session.Client(wrapping: client).changePassword(.with {
            $0.currentPassword = password
            $0.newPassword = new
          })
        }.account
        print("password changed")
      }
      let kindergarten = account.kindergartenCode.isEmpty ? "" : " of kindergarten \(account.kindergartenCode)"
      print("logged in to \(address) as \(account.username) (\(roleName(account.role))\(kindergarten)) until \(formatTime(response.expiresAt))")
    }
  }
}

struct LogoutCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "logout", abstract: "End the session on the server and forget it here.")
  @OptionGroup var connection: ConnectionOptions

  func run() async throws {
    guard SessionStore.load() != nil else {
      print("not logged in")
      return
    }
    // Forget the token here even if the server cannot be reached; it expires there anyway.
    defer { SessionStore.remove() }
    try await runReportingFailure {
      _ = try await connection.withSession { client in
        try await Pemis_V1_Session.Client(wrapping: client).logout(.init())
      }
      print("logged out")
    }
  }
}

struct WhoAmICommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "whoami", abstract: "Show the account of the current session.")
  @OptionGroup var connection: ConnectionOptions

  func run() async throws {
    try await runReportingFailure {
      let response = try await connection.withSession { client in
        try await Pemis_V1_Session.Client(wrapping: client).whoAmI(.init())
      }
      if connection.json { return try printJSON(message: response) }
      let a = response.account
      print("\(a.username)  \(a.displayName)  \(roleName(a.role))\(a.kindergartenCode.isEmpty ? "" : "  kindergarten \(a.kindergartenCode)")")
      print("session until \(formatTime(response.sessionExpiresAt))\(a.passwordChangeRequired ? "  (must change the one-time password: pemis password)" : "")")
    }
  }
}

struct PasswordCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(commandName: "password", abstract: "Change your password.")
  @OptionGroup var connection: ConnectionOptions

  func run() async throws {
    let current = readSecret("current password: ")
    let new = readSecret("new password: ")
    let again = readSecret("new password again: ")
    guard new == again else {
      FileHandle.standardError.write(Data("pemis: the two new passwords differ\n".utf8))
      throw ExitCode(1)
    }
    try await runReportingFailure {
      _ = try await connection.withSession { client in
        try await Pemis_V1_Session.Client(wrapping: client).changePassword(.with {
          $0.currentPassword = current
          $0.newPassword = new
        })
      }
      print("password changed")
    }
  }
}
