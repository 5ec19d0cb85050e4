import Foundation
import HTTPTypes
import Hummingbird
import Logging
import UniKit

/// Turns every error a handler throws into a JSON `{"error", "code"}` body
/// with the one HTTP status chosen here for its ``UniError`` code.
public struct APIErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Creates the middleware.
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as UniError {
            return APIErrorMiddleware.response(for: error)
        } catch let error as HTTPError {
            let code: UniError.Code = error.status == .notFound ? .notFound : (error.status.code < 500 ? .invalidArgument : .internalError)
            let message = error.body ?? (error.status == .notFound ? "no such endpoint: \(request.method) \(request.uri.path)" : error.status.reasonPhrase)
            return APIErrorMiddleware.response(status: error.status, body: APIErrorBody(error: message, code: code.description))
        } catch {
            context.logger.error("unexpected API error", metadata: ["error": "\(error)"])
            return APIErrorMiddleware.response(for: UniError(.internalError, "internal error: \(error)"))
        }
    }

    /// The HTTP status of each error code.
    public static func status(for code: UniError.Code) -> HTTPResponse.Status {
        switch code {
        case .invalidArgument: return .badRequest
        case .notFound: return .notFound
        case .conflict, .invalidState: return .conflict
        case .unavailable: return .serviceUnavailable
        case .hypervisorFailed: return .badGateway
        case .payloadTooLarge: return .contentTooLarge
        // A registry's refusal, passed on: unid itself has no logins.
        case .unauthenticated: return .unauthorized
        case .permissionDenied: return .forbidden
        default: return .internalServerError
        }
    }

    static func response(for error: UniError) -> Response {
        response(status: status(for: error.code), body: APIErrorBody(error: error.message, code: error.code.description))
    }

    static func response(status: HTTPResponse.Status, body: APIErrorBody) -> Response {
        let data = (try? JSONCoding.makeEncoder().encode(body)) ?? Data("{\"error\":\"internal error\",\"code\":\"internal\"}".utf8)
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
