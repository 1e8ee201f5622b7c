/**
 * The OpenAPI 3.1 document (../openapi/openapi.json) is the one description of the HTTP API: it is
 * served at GET /v1/openapi.json, and request validation is compiled from it (ajv, JSON Schema
 * 2020-12, the dialect of OpenAPI 3.1), so what the document says is what the server checks.
 *
 * Message bodies are the exception that proves the rule: libs/core `parseScheduleRequest` checks
 * them (gRPC shares it, and limits such as payload bytes depend on config), and a unit test
 * (test/unit/openapi.test.ts) runs a corpus of bodies through both and requires them to agree.
 */
import type { ErrorDetail } from '@hourglass/core';
import { HourglassError } from '@hourglass/core';
import type { ErrorObject, ValidateFunction } from 'ajv';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import document from '../openapi/openapi.json';

export const openApiDocument: Readonly<Record<string, unknown>> = document;

const DOC_ID = 'https://hourglass.invalid/openapi.json';
const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

interface Operation {
  readonly method: string;
  readonly template: string;
  readonly pattern: RegExp;
  readonly paramNames: readonly string[];
  readonly params: ValidateFunction | undefined;
  readonly body: ValidateFunction | undefined;
  readonly bodyRequired: boolean;
}

export interface MatchedOperation {
  readonly template: string;
  /** Validates the path parameters; throws `invalid_request`. */
  checkParams(path: string): void;
  /** Whether the operation takes a JSON body. */
  readonly hasBody: boolean;
  readonly bodyRequired: boolean;
  /** Validates a parsed body; throws `invalid_request` with one detail per problem. */
  checkBody(body: unknown): void;
}

function pointer(...parts: string[]): string {
  return parts.map((part) => part.replaceAll('~', '~0').replaceAll('/', '~1')).join('/');
}

/** ajv's errors as our details: `path` like `quotas/ratePerSecond`, one entry per problem. */
export function toDetails(
  errors: readonly ErrorObject[] | null | undefined,
  prefix = '',
): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  const seen = new Set<string>();
  for (const error of errors ?? []) {
    let path = error.instancePath.replace(/^\//, '').replaceAll('~1', '/').replaceAll('~0', '~');
    const params = error.params as { missingProperty?: string; additionalProperty?: string };
    if (params.missingProperty)
      path = path ? `${path}/${params.missingProperty}` : params.missingProperty;
    if (params.additionalProperty)
      path = path ? `${path}/${params.additionalProperty}` : params.additionalProperty;
    // anyOf/oneOf add a summary line after the branches' own errors; keep the specific ones.
    if (error.keyword === 'anyOf' || error.keyword === 'oneOf') continue;
    const message = params.additionalProperty
      ? 'unknown field'
      : error.keyword === 'required'
        ? 'required'
        : (error.message ?? 'invalid');
    const full = `${prefix}${path}` || '/';
    const key = `${full}\u0000${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    details.push({ path: full, message });
  }
  return details.length > 0 ? details : [{ path: prefix || '/', message: 'invalid' }];
}

function invalid(what: string, details: ErrorDetail[]): HourglassError {
  return new HourglassError(
    'invalid_request',
    `invalid ${what}: ${details.map((d) => `${d.path}: ${d.message}`).join('; ')}`,
    details,
  );
}

/** Compiled once per process from the document. */
export class OpenApiValidator {
  private readonly operations: Operation[] = [];
  private readonly ajv: Ajv2020;

  constructor(doc: Record<string, unknown> = document) {
    // strict: false because the document carries OpenAPI keywords (example, openapi, paths…) that
    // are not JSON Schema; the schemas themselves are plain 2020-12.
    this.ajv = new Ajv2020({ allErrors: true, strict: false, coerceTypes: false });
    addFormats(this.ajv);
    this.ajv.addSchema({ ...doc, $id: DOC_ID });
    const paths = (doc.paths ?? {}) as Record<string, Record<string, unknown>>;
    for (const [template, item] of Object.entries(paths)) {
      const paramNames: string[] = [];
      const pattern = new RegExp(
        `^${template
          .replace(/[.*+?^$()|[\]\\]/g, '\\$&')
          .replace(/\{([^}]+)\}/g, (_m, name: string) => {
            paramNames.push(name);
            return '([^/]+)';
          })}$`,
      );
      for (const method of METHODS) {
        const op = item[method] as
          | {
              parameters?: Array<{ in: string; name: string; schema?: unknown }>;
              requestBody?: { required?: boolean; content?: Record<string, unknown> };
            }
          | undefined;
        if (!op) continue;
        const pathParams = [
          ...((item.parameters as typeof op.parameters) ?? []),
          ...(op.parameters ?? []),
        ].filter((p) => p.in === 'path');
        const params =
          pathParams.length === 0
            ? undefined
            : this.ajv.compile({
                type: 'object',
                properties: Object.fromEntries(pathParams.map((p) => [p.name, p.schema ?? {}])),
                required: pathParams.map((p) => p.name),
              });
        const json = op.requestBody?.content?.['application/json'] as
          { schema?: unknown } | undefined;
        const body = json?.schema
          ? this.ajv.compile({
              $ref: `${DOC_ID}#/${pointer('paths', template, method, 'requestBody', 'content', 'application/json', 'schema')}`,
            })
          : undefined;
        this.operations.push({
          method: method.toUpperCase(),
          template,
          pattern,
          paramNames,
          params,
          body,
          bodyRequired: op.requestBody?.required === true,
        });
      }
    }
  }

  /** Every (method, path template) the document describes. */
  get routes(): Array<{ method: string; template: string; hasBody: boolean }> {
    return this.operations.map((op) => ({
      method: op.method,
      template: op.template,
      hasBody: op.body !== undefined,
    }));
  }

  /**
   * The methods the document has for a concrete path (none: the path is not the document's). As
   * OpenAPI matches paths, a template with fewer parameters wins: `/v1/messages/batch` is that path
   * item's, not `/v1/messages/{id}`'s.
   */
  allowedMethods(path: string): string[] {
    const matching = this.operations.filter((op) => op.pattern.test(path));
    const fewest = Math.min(...matching.map((op) => op.paramNames.length));
    const methods: string[] = [];
    for (const op of matching)
      if (op.paramNames.length === fewest && !methods.includes(op.method)) methods.push(op.method);
    return methods;
  }

  /** The operation serving a request; HEAD is served by GET (as Express does). */
  match(method: string, path: string): MatchedOperation | undefined {
    const wanted = method === 'HEAD' ? 'GET' : method;
    const op = this.operations.find(
      (candidate) => candidate.method === wanted && candidate.pattern.test(path),
    );
    if (!op) return undefined;
    return {
      template: op.template,
      hasBody: op.body !== undefined,
      bodyRequired: op.bodyRequired,
      checkParams: (actual) => {
        const validateParams = op.params;
        if (!validateParams) return;
        const values = op.pattern.exec(actual)?.slice(1) ?? [];
        const params: Record<string, unknown> = {};
        op.paramNames.forEach((name, index) => {
          const raw = values[index] ?? '';
          let value: string;
          try {
            value = decodeURIComponent(raw);
          } catch {
            value = raw;
          }
          // Path parameters arrive as text; integer ones are compared as numbers.
          params[name] =
            /^(0|[1-9][0-9]{0,14})$/.test(value) && isIntegerParam(validateParams, name)
              ? Number(value)
              : value;
        });
        if (!validateParams(params)) throw invalid('path', toDetails(validateParams.errors));
      },
      checkBody: (body) => {
        if (!op.body) return;
        if (!op.body(body)) throw invalid('request body', toDetails(op.body.errors));
      },
    };
  }
}

function isIntegerParam(validate: ValidateFunction, name: string): boolean {
  const schema = validate.schema as { properties?: Record<string, { type?: unknown }> };
  return schema.properties?.[name]?.type === 'integer';
}
