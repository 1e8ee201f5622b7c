/**
 * JSON request bodies, the same way on every route: `Content-Type: application/json` (or
 * `application/*+json`) or 415, at most `limit` bytes or 413, valid JSON or 400 `malformed_json`,
 * and nested at most `maxDepth` levels or 400 `invalid_request`.
 *
 * The depth is measured on the raw bytes before they are parsed: JSON.parse itself does not
 * recurse, but a body nested millions of levels deep takes seconds to parse, and anything recursive
 * that runs on the parsed value afterwards (JSON.stringify, a schema validator) would overflow the
 * stack. Message payloads have their own, lower limit (limits.maxPayloadDepth, checked by libs/core).
 */
import { HourglassError, jsonTextDepthExceeds } from '@hourglass/core';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import express from 'express';

const JSON_TYPES = ['application/json', 'application/*+json'];

export interface JsonBodyOptions {
  /** Largest body in bytes. */
  limit: number;
  /** Most levels of nesting (`[]` is one). */
  maxDepth: number;
}

/** Parses a JSON body into `req.body` (a body parsed before is left as it is). */
export function jsonBody(options: JsonBodyOptions): RequestHandler {
  const { maxDepth } = options;
  return express.json({
    limit: options.limit,
    type: JSON_TYPES,
    verify: (_req, _res, buffer) => {
      // Thrown errors reach the error handler as they are (body-parser only adds fields).
      if (jsonTextDepthExceeds(buffer, maxDepth)) {
        throw new HourglassError(
          'invalid_request',
          `the JSON body nests more than ${maxDepth} levels deep`,
          [{ path: '/', message: `at most ${maxDepth} levels of nesting` }],
        );
      }
    },
  });
}

export function isJsonRequest(req: Request): boolean {
  // `is` answers the matching type, false, or null for a request without a body.
  return Boolean(req.is(JSON_TYPES));
}

export function unsupportedMediaType(): HourglassError {
  return new HourglassError(
    'unsupported_media_type',
    'send the body as JSON with Content-Type: application/json',
  );
}

/** 415 unless the request says its body is JSON. */
export function requireJson(req: Request, _res: Response, next: NextFunction): void {
  next(isJsonRequest(req) ? undefined : unsupportedMediaType());
}

/** Maps body-parser failures (they carry `type`) to our codes; anything else is not one of them. */
export function bodyParserError(error: unknown): HourglassError | undefined {
  const type = (error as { type?: unknown }).type;
  if (type === 'entity.parse.failed') {
    return new HourglassError(
      'malformed_json',
      `the body is not valid JSON: ${(error as Error).message}`,
    );
  }
  if (type === 'entity.too.large') {
    const limit = (error as { limit?: number }).limit;
    return new HourglassError(
      'payload_too_large',
      `the request body is larger than ${limit ?? 'the limit of'} bytes`,
    );
  }
  if (type === 'encoding.unsupported' || type === 'charset.unsupported') {
    return new HourglassError('unsupported_media_type', (error as Error).message);
  }
  return undefined;
}
