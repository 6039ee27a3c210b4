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

/// One line for a person: "UNAVAILABLE: cannot connect to 127.0.0.1:7400: connection refused".
public func describeFailure(_ error: any Error) -> String {
  if let error = error as? RPCError {
    return "\(error.code.grpcName): \(error.message)"
  }
  return "\(error)"
}
