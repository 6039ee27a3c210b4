import Foundation
import Testing

@testable import PEMISServer
@testable import PEMISStore

/// Issue 14, item 4: a second server started on the same data directory refuses before writing
/// anything; a server that stopped, or was killed, leaves nothing that stops the next one.
@Suite("Data directory lock", .serialized)
struct DataDirectoryLockTests {
  let server = productsDirectory.appendingPathComponent("pemis-server")

  @Test("a second `serve` on a directory in use exits at once naming the first one's pid, and writes nothing")
  func secondServerRefused() async throws {
    let first = try await ServerProcess.start()
    let data = first.dataDirectory
    defer { try? FileManager.default.removeItem(atPath: (data as NSString).deletingLastPathComponent) }
    // The first writes its status file just after it reports its address: wait for it, so
    // the fingerprint below is of a server at rest.
    let runtime = (data as NSString).appendingPathComponent("pemis-server.status.json")
    for _ in 0..<100 where !FileManager.default.fileExists(atPath: runtime) { try await Task.sleep(for: .milliseconds(50)) }
    let before = try await DataFingerprint.of(data)
    let second = try await run(
      server, ["serve", "--port", "0", "--data-dir", data, "--log-level", "warning"], timeout: 60)
    #expect(second.status != 0, "\(second.stdout)\n\(second.stderr)")
    #expect(second.stderr.contains("数据目录正在被另一个服务器使用"), "\(second.stderr)")
    #expect(second.stderr.contains("pid \(first.process.processIdentifier)"), "\(second.stderr)")
    #expect(!second.stdout.contains("listening"), "\(second.stdout)")
    #expect(try await DataFingerprint.of(data) == before)
    // The first goes on serving.
    #expect(first.process.isRunning)

    // Killed: the kernel drops the lock with the process; the lock file left behind is reused.
    _ = await first.stop(signal: SIGKILL)
    let next = try await ServerProcess.start(dataDirectory: data)
    #expect(try String(contentsOfFile: (data as NSString).appendingPathComponent(DataDirectoryLock.fileName), encoding: .utf8)
      .contains("pid \(next.process.processIdentifier)"))
    let stopped = await next.stop()
    #expect(stopped.status == 0, "\(stopped.log)")
    // Stopped cleanly: the next one starts too.
    let last = try await ServerProcess.start(dataDirectory: data)
    _ = await last.stop()
  }

  @Test("within one process, the lock is held by one holder at a time and released with it")
  func oneHolder() throws {
    let directory = NSTemporaryDirectory() + "pemis-lock-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var holder: DataDirectoryLock? = try DataDirectoryLock(directory: directory)
    #expect(throws: StoreError.self) { _ = try DataDirectoryLock(directory: directory) }
    _ = holder
    holder = nil
    #expect(throws: Never.self) { _ = try DataDirectoryLock(directory: directory) }
  }
}
