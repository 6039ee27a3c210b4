import ArgumentParser
import Foundation
import Logging
import PEMISServer
import PEMISStore

/// `pemis-server init`: creates the data directory and the first district administrator.
struct Init: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Create the data directory and the first district administrator account.",
    discussion: """
      Prints the administrator's one-time password once; it must be changed at the first login \
      (pemis login). Refuses to run on a data directory that already has accounts.
      """)

  @OptionGroup var options: ServerOptions

  @Option(help: "Username of the first district administrator.")
  var username = "admin"

  @Option(help: "Display name of the first district administrator.")
  var name = "District administrator"

  func run() async throws {
    let configuration: ServerConfiguration
    do { configuration = try options.resolve() } catch { throw ValidationError(error.description) }
    do {
      let server = try PEMISServer(
        configuration: configuration, logger: Logger(label: "pemis.init", factory: { _ in SwiftLogNoOpLogHandler() }))
      let password = try await server.tenancy.createFirstAdministrator(username: username, displayName: name)
      print("initialized \(configuration.dataDirectory)")
      print("district administrator: \(username)")
      print("one-time password:      \(password)")
      print("log in with `pemis login --user \(username)` and choose a new password; this one is shown only now.")
    } catch {
      FileHandle.standardError.write(Data("pemis-server init: \(error)\n".utf8))
      throw ExitCode(1)
    }
  }
}

/// `pemis-server audit verify`: recomputes the audit log's hash chain.
struct AuditCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "audit", abstract: "Work with the audit log.", subcommands: [Verify.self])

  struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Check that no audit log entry was changed, removed or inserted.",
      discussion: "Exits 0 and prints the head hash when the chain is intact; exits 1 naming the first bad entry.")

    @OptionGroup var options: ServerOptions

    func run() async throws {
      let configuration: ServerConfiguration
      do { configuration = try options.resolve() } catch { throw ValidationError(error.description) }
      let server = try PEMISServer(
        configuration: configuration, logger: Logger(label: "pemis.audit", factory: { _ in SwiftLogNoOpLogHandler() }))
      switch try await server.tenancy.registry.verifyAuditChain() {
      case .intact(entries: let entries, head: let head):
        print("audit log intact: \(entries) entries, head hash \(head)")
        print("keep the head hash outside this machine (a signed report): the chain proves entries were not altered,")
        print("and a later chain that still contains this hash proves nothing before it was cut off either.")
      case .broken(atSequence: let sequence, reason: let reason):
        print("audit log BROKEN at entry \(sequence): \(reason)")
        throw ExitCode(1)
      }
    }
  }
}
