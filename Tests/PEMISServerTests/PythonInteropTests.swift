import Foundation
import Testing

/// Python's standard grpcio against the HTTP/2 listener of a real server: the proof that a client
/// generated from Protos/ by another language's standard gRPC tools works with pemis-server, with
/// the same login, masking and tenant isolation (tools/interop-python/).
@Suite("Python grpcio over HTTP/2", .serialized)
struct PythonInteropTests {
  @Test(
    "log in, list a kindergarten's children masked, refused without a session and for another kindergarten",
    arguments: [false, true])
  func childrenOverStandardGRPC(tls: Bool) async throws {
    let certificates = tls ? try TestCertificates.make() : nil
    let seeded = try await SeededServer.start(tls: certificates)
    // run.sh makes the venv when it is missing (pip: grpcio, grpcio-tools), generates the stubs
    // into a scratch directory and runs test_interop.py; tools/test.sh has made the venv already.
    let output = try await run(
      URL(fileURLWithPath: "/bin/bash"),
      [
        repositoryRoot.appendingPathComponent("tools/interop-python/run.sh").path,
        "--server", "\(seeded.http2)", "--user", SeededServer.user, "--password", SeededServer.password,
        "--kindergarten", SeededServer.kindergarten, "--other-kindergarten", SeededServer.otherKindergarten,
        "--enrolled-id", SeededServer.childID,
      ] + (certificates.map { ["--ca-file", $0.caFile] } ?? []), timeout: 600)
    #expect(output.status == 0, "stdout:\n\(output.stdout)\nstderr:\n\(output.stderr)")
    #expect(output.stdout.contains("all checks passed"), "\(output.stdout)")
    #expect(!output.stdout.contains("FAIL"), "\(output.stdout)")
    if tls { #expect(output.stdout.contains("ok    a plaintext channel to the TLS listener is refused")) }
    #expect(await seeded.server.stop().status == 0)
  }
}
