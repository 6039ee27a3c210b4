import Foundation
import Testing

/// `pemis-server status`, as the operator runs it beside the running server (docs/OPERATIONS.md).
@Suite("pemis-server status", .serialized)
struct StatusCommandTests {
  let server = productsDirectory.appendingPathComponent("pemis-server")

  @Test("running: pid, uptime, listeners, data size, transfers, audit head, exit 0; stopped: exit 3, and nothing written")
  func status() async throws {
    let process = try await ServerProcess.start(extraArguments: ["--metrics-port", "0"])
    let data = process.dataDirectory
    let runtime = (data as NSString).appendingPathComponent("pemis-server.status.json")
    for _ in 0..<100 where !FileManager.default.fileExists(atPath: runtime) { try await Task.sleep(for: .milliseconds(50)) }
    let running = try await run(server, ["status", "--data-dir", data])
    #expect(running.status == 0, "\(running.stdout)\(running.stderr)")
    #expect(running.stdout.contains("运行 running:     pid \(process.process.processIdentifier)"), "\(running.stdout)")
    #expect(running.stdout.contains("127.0.0.1:\(process.port) (PEMIS wire v1)"))
    #expect(running.stdout.contains("/metrics"))
    #expect(running.stdout.contains("转学 transfers:   none mid-step; 0 awaiting their receiver"))
    #expect(running.stdout.contains("审计链 audit:     0 entries, head \(String(repeating: "0", count: 64))"))
    #expect(running.stdout.contains("备份 backup:"))
    let before = try FileManager.default.contentsOfDirectory(atPath: data).sorted()
    let stopped = await process.stop()
    #expect(stopped.status == 0, "\(stopped.log)")
    #expect(!FileManager.default.fileExists(atPath: runtime), "the status file outlived the server")
    let after = try await run(server, ["status", "--data-dir", data])
    #expect(after.status == 3, "\(after.stdout)\(after.stderr)")
    #expect(after.stdout.contains("运行 running:     no"))
    // Read-only: status adds no file to the data directory (SQLite's own -wal and -shm aside).
    func files(_ names: [String]) -> [String] { names.filter { !$0.hasSuffix("-wal") && !$0.hasSuffix("-shm") && $0 != "pemis-server.status.json" } }
    #expect(files(try FileManager.default.contentsOfDirectory(atPath: data).sorted()) == files(before))
  }

  @Test("a server that died without stopping is told apart from one that stopped")
  func stale() async throws {
    let process = try await ServerProcess.start()
    let data = process.dataDirectory
    let runtime = (data as NSString).appendingPathComponent("pemis-server.status.json")
    for _ in 0..<100 where !FileManager.default.fileExists(atPath: runtime) { try await Task.sleep(for: .milliseconds(50)) }
    _ = await process.stop(signal: SIGKILL)
    let output = try await run(server, ["status", "--data-dir", data])
    #expect(output.status == 3)
    #expect(output.stdout.contains("is gone without stopping cleanly"), "\(output.stdout)")
  }

  @Test("SIGHUP rereads the calendar folder: a new year's file is taken; a broken one is refused and the old calendar stays")
  func calendarReload() async throws {
    let work = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-calendar-\(UUID())")
    let calendar = work.appendingPathComponent("calendar")
    try FileManager.default.createDirectory(at: calendar, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: work) }
    let source = repositoryRoot.appendingPathComponent("Config/calendar")
    let years = try FileManager.default.contentsOfDirectory(atPath: source.path).filter { $0.hasSuffix(".json") }.sorted()
    let last = try #require(years.last)
    for year in years.dropLast() {
      try FileManager.default.copyItem(at: source.appendingPathComponent(year), to: calendar.appendingPathComponent(year))
    }
    let first = try #require(years.first).prefix(4)
    let server = try await LineServerProcess.start(arguments: [
      "serve", "--port", "0", "--data-dir", work.appendingPathComponent("data").path, "--log-level", "warning",
      "--calendar-dir", calendar.path,
    ])
    defer { server.kill() }
    try FileManager.default.copyItem(at: source.appendingPathComponent(last), to: calendar.appendingPathComponent(last))
    server.signal(SIGHUP)
    #expect(try await server.nextLine() == "pemis-server reloaded the working-day calendar (years \(first)–\(last.prefix(4)))")
    try Data("{ not a calendar".utf8).write(to: calendar.appendingPathComponent("2099.json"))
    server.signal(SIGHUP)
    let kept = try await server.nextLine()
    #expect(kept.hasPrefix("pemis-server kept the old working-day calendar"), "\(kept)")
    #expect(kept.contains("2099.json"), "the message names the file: \(kept)")
    #expect(await server.stop() == 0)
  }
}
