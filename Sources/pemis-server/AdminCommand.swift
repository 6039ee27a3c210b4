import ArgumentParser
import Foundation
import Logging
import PEMISServer
import PEMISStore

/// `pemis-server admin …`: break-glass on the server host. It opens the data directory itself
/// (so only its owner, the operator, can run it) and needs no login; each step is audited.
struct AdminCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "admin",
    abstract: "Break-glass account steps on the server host (needs the data directory; audited).",
    discussion: """
      For when no district administrator can log in: unseal an account, reset a password, \
      or create a district administrator. Works while the server runs.
      """,
    subcommands: [Unseal.self, ResetPassword.self, CreateDistrictAdmin.self])

  /// The tenancy of the data directory the options name, without serving it.
  static func open(_ options: ServerOptions) throws -> PEMISServer {
    let configuration: ServerConfiguration
    do { configuration = try options.resolve() } catch { throw ValidationError(error.description) }
    return try PEMISServer(
      configuration: configuration, logger: Logger(label: "pemis.admin", factory: { _ in SwiftLogNoOpLogHandler() }))
  }

  /// Runs a step, printing a failure as `pemis-server admin: …` and exiting 1.
  static func step(_ body: () async throws -> Void) async throws {
    do {
      try await body()
    } catch let error as ValidationError {
      throw error
    } catch let exit as ExitCode {
      // The step said what went wrong itself.
      throw exit
    } catch {
      FileHandle.standardError.write(Data("pemis-server admin: \(error)\n".utf8))
      throw ExitCode(1)
    }
  }

  /// A password from standard input (its first line), for `--password-stdin`.
  static func passwordFromStandardInput() throws -> String {
    guard let line = readLine(strippingNewline: true), !line.isEmpty else {
      throw ValidationError("--password-stdin: standard input gave no password")
    }
    return line
  }

  struct Unseal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Unseal an account sealed after six months unused.")
    @OptionGroup var options: ServerOptions
    @Argument(help: "The account's username.") var username: String

    func run() async throws {
      try await AdminCommand.step {
        let server = try AdminCommand.open(options)
        let account = try await server.tenancy.breakGlassUnseal(username)
        print("unsealed \(account.username)")
      }
    }
  }

  struct ResetPassword: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "reset-password",
      abstract: "Give an account a one-time password; ends its sessions and unlocks it everywhere.",
      discussion: "Prints a generated one-time password, or sets the one read from standard input with --password-stdin.")
    @OptionGroup var options: ServerOptions
    @Argument(help: "The account's username.") var username: String
    @Flag(help: "Read the one-time password from standard input instead of generating one.") var passwordStdin = false

    func run() async throws {
      let given = try passwordStdin ? AdminCommand.passwordFromStandardInput() : nil
      try await AdminCommand.step {
        let server = try AdminCommand.open(options)
        let password = try await server.tenancy.breakGlassResetPassword(username, password: given)
        print("reset the password of \(username)")
        if given == nil { print("one-time password:      \(password)") }
        print("it must be changed at the next login (pemis login --user \(username)).")
      }
    }
  }

  struct CreateDistrictAdmin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "create-district-admin", abstract: "Create a district administrator account with a one-time password.")
    @OptionGroup var options: ServerOptions
    @Argument(help: "Username of the new district administrator.") var username: String
    @Option(help: "Display name.") var name = "District administrator"
    @Flag(help: "Read the one-time password from standard input instead of generating one.") var passwordStdin = false

    func run() async throws {
      let given = try passwordStdin ? AdminCommand.passwordFromStandardInput() : nil
      try await AdminCommand.step {
        let server = try AdminCommand.open(options)
        let password = try await server.tenancy.breakGlassCreateDistrictAdmin(username, displayName: name, password: given)
        print("district administrator: \(username)")
        if given == nil { print("one-time password:      \(password)") }
        print("log in with `pemis login --user \(username)` and choose a new password.")
      }
    }
  }
}
