internal import GRPCCore

/// Outermost on each listener: counts every call by service, method and final status, times it,
/// and keeps the listener's calls in flight (``ServerMetrics``). Outside access control, so a
/// refused call is counted with the status its client saw.
struct MetricsInterceptor: ServerInterceptor {
  let metrics: ServerMetrics
  /// "wire" or "http2".
  let listener: String

  func intercept<Input: Sendable, Output: Sendable>(
    request: StreamingServerRequest<Input>,
    context: ServerContext,
    next: (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
  ) async throws -> StreamingServerResponse<Output> {
    let start = ContinuousClock.now
    let (metrics, listener) = (self.metrics, self.listener)
    let service = context.descriptor.service.fullyQualifiedService
    let method = context.descriptor.method
    let finish: @Sendable (RPCError.Code?) -> Void = { code in
      metrics.callFinished(listener: listener, service: service, method: method, code: code, duration: ContinuousClock.now - start)
    }
    metrics.callStarted(listener: listener)
    let response: StreamingServerResponse<Output>
    do {
      response = try await next(request, context)
    } catch {
      finish(ErrorStatus.code(of: error))
      throw error
    }
    switch response.accepted {
    case .failure(let error):
      finish(error.code)
      return response
    case .success(let contents):
      // The call ends when its producer does (after this function returned, for streaming).
      let producer = contents.producer
      return StreamingServerResponse(
        accepted: .success(
          .init(metadata: contents.metadata) { writer in
            do {
              let trailers = try await producer(writer)
              finish(nil)
              return trailers
            } catch {
              finish(ErrorStatus.code(of: error))
              throw error
            }
          }))
    }
  }
}
