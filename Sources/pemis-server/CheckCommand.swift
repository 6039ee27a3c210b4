import ArgumentParser
import Foundation
import Logging
import PEMISRouting
import PEMISServer
import PEMISStore

/// `pemis-server check`: the routing layer's invariant, checked from the shards up.
struct Check: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Check that every record number is active in one shard at most and the district index agrees with the shards.",
    discussion: """
      Reads every kindergarten's shard and the registry, and reports every disagreement: a record \
      active in two shards, an index entry that says otherwise than the shards, a child missing \
      from the index, a reservation or a transfer left mid-step. Exits 1 when there is one. Run \
      it on a stopped server's data directory (a running server finishes interrupted steps \
      itself, at start and every minute). --recover first finishes interrupted steps as the \
      server would; --repair rebuilds the index from the shards.
      """)

  @OptionGroup var options: ServerOptions
  @Flag(help: "First finish transfers and reservations a crash interrupted, as the server does at start.") var recover = false
  @Flag(help: "Rebuild the district index from the shards, then check again.") var repair = false

  func run() async throws {
    let configuration: ServerConfiguration
    do { configuration = try options.resolve() } catch { throw ValidationError(error.description) }
    let server = try PEMISServer(
      configuration: configuration, logger: Logger(label: "pemis.check", factory: { _ in SwiftLogNoOpLogHandler() }))
    let router = server.tenancy.router
    if recover {
      let finished = try await router.recover()
      print("recovery finished \(finished) interrupted steps")
    }
    if repair {
      let rows = try await router.rebuildIndex()
      print("rebuilt the district index from the shards: \(rows) records")
    }
    let report = try await router.check()
    print(
      "checked \(report.kindergartens) kindergartens: \(report.children) child records, \(report.activeChildren) active, \(report.indexRows) index entries"
    )
    for finding in report.findings { print("  \(finding)") }
    if report.findings.isEmpty {
      print("consistent: every record number is active in one shard at most, and the index agrees")
    } else {
      print("\(report.findings.count) disagreements")
      throw ExitCode(1)
    }
  }
}
