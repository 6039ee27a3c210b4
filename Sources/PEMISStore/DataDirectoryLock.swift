internal import Foundation
#if canImport(Glibc)
  internal import Glibc
#endif

/// One serving process per data directory (issue 14, item 4). The routing layer's order of
/// writes across files, the recovery of interrupted steps and the reservations' leases all
/// assume that one process drives the files; a second `pemis-server serve` on the same directory
/// (a second unit, a forgotten terminal) would run recovery against the first one's steps.
///
/// `serve` takes an exclusive `flock` on `pemis-server.lock` in the data directory before it
/// opens or writes anything else, and holds it for its life; the kernel releases it when the
/// process ends, however it ends, so a killed server leaves no stale lock. The file holds the
/// holder's process id and start time, for the message the next one gives. Administration
/// commands (`key`, `check`, `status`) do not take it: they are meant to run beside the server.
public final class DataDirectoryLock: Sendable {
  /// The lock file's name inside the data directory.
  public static let fileName = "pemis-server.lock"

  private let descriptor: Int32
  public let path: String

  /// Takes the lock, or throws naming the process that holds it.
  public init(directory: String) throws {
    path = (directory as NSString).appendingPathComponent(Self.fileName)
    let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw StoreError(
        .failedPrecondition, "the data directory's lock \(path) cannot be opened: \(String(cString: strerror(errno)))")
    }
    guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
      let reason = errno
      let holder = Self.holder(fd)
      close(fd)
      guard reason == EWOULDBLOCK else {
        throw StoreError(.failedPrecondition, "the data directory's lock \(path) cannot be taken: \(String(cString: strerror(reason)))")
      }
      throw StoreError(
        .failedPrecondition,
        "数据目录正在被另一个服务器使用 the data directory \(directory) is in use by another pemis-server"
          + (holder.isEmpty ? "" : " (\(holder))")
          + ": stop it first; two servers on one data directory would each recover the other's transfers")
    }
    descriptor = fd
    let text = "pid \(getpid()), started \(ISO8601DateFormatter().string(from: Date()))\n"
    _ = ftruncate(fd, 0)
    _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
  }

  /// What the holder wrote: "pid N, started T".
  private static func holder(_ fd: Int32) -> String {
    var buffer = [UInt8](repeating: 0, count: 200)
    let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
    guard n > 0 else { return "" }
    return String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
  }

  deinit {
    // Closing the descriptor releases the lock; the file stays, for the next holder to reuse.
    close(descriptor)
  }
}
