public import GRPCCore
public import PEMISWire

/// Runs `body` with a gRPC client connected to `address` over PEMIS wire, and shuts the client
/// down (letting calls finish) when `body` returns.
/// - Parameter security: TLS or plaintext. Plaintext by default for tests and tools on loopback;
///   `pemis` always passes what the user chose (TLS unless told otherwise).
public func withPEMISClient<Result: Sendable>(
  _ address: ServerAddress,
  token: String? = nil,
  security: ClientSecurity = .plaintext,
  config: PEMISWireClientTransport.Config = .defaults,
  _ body: (GRPCClient<PEMISWireClientTransport>) async throws -> Result
) async throws -> Result {
  var config = config
  config.tls = try security.wireTLS(for: address)
  let transport = PEMISWireClientTransport(host: address.host, port: address.port, config: config)
  let interceptors: [any ClientInterceptor] = token.map { [BearerTokenInterceptor(token: $0)] } ?? []
  return try await withGRPCClient(transport: transport, interceptors: interceptors) { client in
    try await body(client)
  }
}

/// One line for a person: "UNAVAILABLE: cannot connect to 127.0.0.1:7400: connection refused",
/// with the server's request id when it sent one ("… (请求编号 request id 3f2a…)"), which the
/// person quotes to the district's IT officer, who finds the call's log lines and audit entry by it.
public func describeFailure(_ error: any Error) -> String {
  if let error = error as? RPCError {
    let id = error.metadata[stringValues: "pemis-request-id"].first(where: { _ in true })
    let printable = id.map { $0.utf8.count <= 32 && $0.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) } } ?? false
    return "\(error.code.grpcName): \(error.message)" + (printable ? " (请求编号 request id \(id!))" : "")
  }
  return "\(error)"
}
