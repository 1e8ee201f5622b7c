/**
 * The standard gRPC health service (grpc.health.v1.Health, proto/grpc/health/v1/health.proto),
 * implemented here because grpc-health-check is not a dependency. Semantics follow the proto's
 * comments: Check answers NOT_FOUND for an unknown service; Watch sends the current status at once,
 * then each change, and SERVICE_UNKNOWN (without ending) for an unknown service.
 */
import type {
  ServerUnaryCall,
  ServerWritableStream,
  UntypedServiceImplementation,
  sendUnaryData,
} from '@grpc/grpc-js';
import { status as GrpcCode } from '@grpc/grpc-js';

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

interface HealthCheckRequest {
  service?: string;
}
interface HealthCheckResponse {
  status: ServingStatus;
}

export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Set<{
    service: string;
    call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>;
  }>();

  /** `services`: the names reported; '' (the whole server) is always one of them. */
  constructor(services: readonly string[]) {
    for (const service of ['', ...services]) this.statuses.set(service, 'NOT_SERVING');
  }

  /** Sets the status of every known service and tells the watchers. */
  setAll(status: ServingStatus): void {
    for (const service of this.statuses.keys()) this.statuses.set(service, status);
    for (const watcher of this.watchers) {
      const current = this.statuses.get(watcher.service);
      if (current) watcher.call.write({ status: current });
    }
  }

  /** Ends every Watch stream, so a graceful shutdown does not wait for them. */
  endWatches(): void {
    for (const watcher of this.watchers) watcher.call.end();
    this.watchers.clear();
  }

  implementation(): UntypedServiceImplementation {
    return {
      Check: (
        call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
        callback: sendUnaryData<HealthCheckResponse>,
      ) => {
        const service = call.request.service ?? '';
        const status = this.statuses.get(service);
        if (!status) {
          callback({ code: GrpcCode.NOT_FOUND, details: `unknown service "${service}"` });
          return;
        }
        callback(null, { status });
      },
      Watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        const service = call.request.service ?? '';
        const watcher = { service, call };
        this.watchers.add(watcher);
        call.on('cancelled', () => this.watchers.delete(watcher));
        call.write({ status: this.statuses.get(service) ?? 'SERVICE_UNKNOWN' });
      },
    };
  }
}
