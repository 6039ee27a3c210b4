import ArgumentParser
import Foundation
import Logging
import PEMISDomain
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
      print("data key file:          \(server.tenancy.registry.keys.source.name) (back it up apart from the data: without it no child's record opens)")
      print("district administrator: \(username)")
      print("one-time password:      \(password)")
      print("log in with `pemis login --user \(username)` and choose a new password; this one is shown only now.")
    } catch {
      FileHandle.standardError.write(Data("pemis-server init: \(error)\n".utf8))
      throw ExitCode(1)
    }
  }
}

/// `pemis-server audit verify` and `audit prune`: the audit log on the server host.
struct AuditCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "audit", abstract: "Work with the audit log.", subcommands: [Verify.self, Prune.self])

  struct Verify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Check that no audit log entry was changed, removed or inserted, or cut off the end.",
      discussion: """
        Exits 0 and prints the head hash when the chain is intact; exits 1 naming the first bad entry. \
        With --head FILE (the file the server writes, auditHeadFile) it also checks that the entry the \
        file names is still in the chain with the same hash: entries cut off the end are found.
        """)

    @OptionGroup var options: ServerOptions
    @Option(help: "An audit head file (auditHeadFile, kept outside the data directory).") var head: String?

    func run() async throws {
      let configuration: ServerConfiguration
      do { configuration = try options.resolve() } catch { throw ValidationError(error.description) }
      let kept: AuditHeadFile?
      do { kept = try head.map(AuditHeadFile.read) } catch { throw ValidationError("\(error)") }
      let server = try PEMISServer(
        configuration: configuration, logger: Logger(label: "pemis.audit", factory: { _ in SwiftLogNoOpLogHandler() }))
      let registry = server.tenancy.registry
      switch try await registry.verifyAuditChain() {
      case .intact(entries: let entries, head: let hash):
        if let kept {
          switch try await kept.check(registry) {
          case .cut(missing: let missing, logEndsAt: let end):
            print("audit log CUT: the head file (written \(kept.writtenAt)) names entry \(kept.sequence), the log ends at entry \(end):")
            print("\(missing) entries were cut off the end")
            throw ExitCode(1)
          case .differs:
            print("audit log BROKEN: entry \(kept.sequence) does not have the hash the head file (written \(kept.writtenAt)) recorded")
            throw ExitCode(1)
          case .pruned(through: let through):
            print("audit log intact: \(entries) entries, head hash \(hash)")
            print("the head file's entry \(kept.sequence) (written \(kept.writtenAt)) was pruned (entries through \(through) were removed):")
            print("keep a newer head file; this one can no longer be checked")
            return
          case .contained:
            print("audit log intact: \(entries) entries, head hash \(hash)")
            print("it contains the head file's entry \(kept.sequence) (written \(kept.writtenAt)): nothing before it was cut off")
            return
          }
        }
        print("audit log intact: \(entries) entries, head hash \(hash)")
        print("keep the head hash outside this machine (auditHeadFile, a signed report): the chain proves entries were not altered,")
        print("and a later chain that still contains this hash proves nothing before it was cut off either.")
      case .broken(atSequence: let sequence, reason: let reason):
        print("audit log BROKEN at entry \(sequence): \(reason)")
        throw ExitCode(1)
      }
    }
  }

  struct Prune: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Remove audit entries written before a day, never one of the last six months (audited).",
      discussion: """
        Entries are kept at least six months (Cybersecurity Law Art. 21), or auditRetentionMonths if \
        longer; a day within that is refused and nothing is removed. The chain stays verifiable: it \
        goes on from the last entry removed.
        """)

    @OptionGroup var options: ServerOptions
    @Option(help: "Remove the entries written before this day (YYYY-MM-DD, Beijing time).") var before: String

    func run() async throws {
      let configuration: ServerConfiguration
      do { configuration = try options.resolve() } catch { throw ValidationError(error.description) }
      guard let date = CalendarDate(iso: before) else { throw ValidationError("--before: must be a date like 2026-01-01, got '\(before)'") }
      try await AdminCommand.step {
        let server = try PEMISServer(
          configuration: configuration, logger: Logger(label: "pemis.audit", factory: { _ in SwiftLogNoOpLogHandler() }))
        let removed = try await server.tenancy.pruneAuditLog(before: date, retentionMonths: configuration.auditRetentionMonths)
        print("removed \(removed) audit entries written before \(date)")
      }
    }
  }
}

/// `pemis-server retention scrub`: the daily retention scrub, now.
struct RetentionCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "retention", abstract: "Deletion when use ends: scrub children who left long ago.", subcommands: [Scrub.self])

  struct Scrub: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Remove guardian contacts, health and household details of children who left more than retentionYears ago (audited).",
      discussion: "The server does this once a day by itself. Record number, name, gender, dates, state and kindergarten stay.")

    @OptionGroup var options: ServerOptions

    func run() async throws {
      let configuration: ServerConfiguration
      do { configuration = try options.resolve() } catch { throw ValidationError(error.description) }
      try await AdminCommand.step {
        let server = try PEMISServer(
          configuration: configuration, logger: Logger(label: "pemis.retention", factory: { _ in SwiftLogNoOpLogHandler() }))
        let result = try await server.tenancy.scrubRetention(years: configuration.retentionYears)
        print("scrubbed \(result.children) children in \(result.kindergartens) kindergartens (left more than \(configuration.retentionYears) years ago)")
      }
    }
  }
}
