import ArgumentParser
import Foundation
import GRPCCore
import PEMISClient
import PEMISWire

/// Options every command that talks to a server shares.
struct ConnectionOptions: ParsableArguments {
  @Option(help: "Server as HOST:PORT. Default: $PEMIS_SERVER, else 127.0.0.1:7400.")
  var server: String?

  @Option(help: "Seconds to wait for an answer.")
  var timeout: Double = 10

  @Flag(help: "Print the result as JSON.")
  var json = false

  @Option(
    name: .customLong("ca-file"),
    help: "PEM file of the CA that signed the server's certificate. Default: $PEMIS_CA_FILE, else the one given at login, else the system's trust store.")
  var caFile: String?

  @Flag(
    help: "Talk to the server without TLS: password and session token cross the network in cleartext. Default: $PEMIS_PLAINTEXT, else as at login.")
  var plaintext = false

  /// TLS unless the user chose plaintext: on the command line, in $PEMIS_PLAINTEXT, or at the
  /// login whose session is used. The CA file likewise: flag, $PEMIS_CA_FILE, login.
  func security(session: SavedSession? = SessionStore.load()) throws -> ClientSecurity {
    let environment = ProcessInfo.processInfo.environment
    let plaintextEnvironment = environment["PEMIS_PLAINTEXT"].map { ["1", "true", "yes", "on"].contains($0.lowercased()) }
    let caFile = caFile ?? environment["PEMIS_CA_FILE"].flatMap { $0.isEmpty ? nil : $0 } ?? session?.caFile
    if plaintext || (plaintextEnvironment ?? session?.plaintext ?? false) {
      if self.caFile != nil { throw ValidationError("--ca-file and --plaintext contradict each other: choose one") }
      return .plaintext
    }
    if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
      throw ValidationError("--ca-file \(caFile): no readable file there")
    }
    return .tls(caFile: caFile)
  }

  func address() throws -> ServerAddress {
    let text = server ?? SessionStore.load()?.server ?? ProcessInfo.processInfo.environment["PEMIS_SERVER"]
    guard let text else { return .default }
    do {
      return try ServerAddress(parsing: text)
    } catch {
      throw ValidationError(error.description)
    }
  }

  var callOptions: CallOptions {
    var options = CallOptions.defaults
    options.timeout = .milliseconds(Int64(timeout * 1000))
    return options
  }

  func validate() throws {
    guard timeout > 0 else { throw ValidationError("--timeout must be above 0 seconds") }
  }
}

extension ConnectionOptions {
  /// Runs `body` with a client that carries the saved session's token.
  func withSession<R: Sendable>(
    _ body: (GRPCClient<PEMISWireClientTransport>) async throws -> R
  ) async throws -> R {
    guard let session = SessionStore.load() else {
      FileHandle.standardError.write(Data("pemis: not logged in; run `pemis login` first\n".utf8))
      throw ExitCode(1)
    }
    let address = try server.map { try ServerAddress(parsing: $0) } ?? ServerAddress(parsing: session.server)
    return try await withPEMISClient(address, token: session.token, security: try security(session: session), body)
  }

  /// Runs `body` with a client to `address` (TLS or plaintext as ``security(session:)`` says).
  func withClient<R: Sendable>(
    _ address: ServerAddress, token: String? = nil,
    _ body: (GRPCClient<PEMISWireClientTransport>) async throws -> R
  ) async throws -> R {
    try await withPEMISClient(address, token: token, security: try security(), body)
  }
}

/// Reads a secret: from the terminal without echo, or one line of standard input when piped.
func readSecret(_ prompt: String) -> String {
  if isatty(STDIN_FILENO) != 0, let pointer = getpass(prompt) {
    return String(cString: pointer)
  }
  return readLine(strippingNewline: true) ?? ""
}

/// Runs a command's server work, turning failures into one clear line and exit status 1.
func runReportingFailure(_ body: () async throws -> Void) async throws {
  do {
    try await body()
  } catch let error as RPCError {
    FileHandle.standardError.write(Data("pemis: \(describeFailure(error))\n".utf8))
    throw ExitCode(1)
  }
}

/// Prints a value as one line of JSON with sorted keys.
func printJSON(_ object: [String: Any]) throws {
  let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
  print(String(decoding: data, as: UTF8.self))
}
