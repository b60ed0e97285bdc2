// The smallest useful frontend flow, typed end to end by the platform's own API:
// sign in, list the catalog page by page, and get a short-lived link to read a book.
// It is compiled (never run) by `make test`: if a response it reads changes shape,
// the compilation fails, and so does CI. docs/frontend.md explains each step.
import createClient from "openapi-fetch";

import type { components, paths } from "./schema";

export type Book = components["schemas"]["BookOut"];
export type Link = components["schemas"]["DeliveryOut"];
type Problem = components["schemas"]["ProblemDetail"];

// One origin for everything: the gateway (`make up`: http://127.0.0.1:8000).
export function platform(baseUrl = "http://127.0.0.1:8000") {
  return createClient<paths>({ baseUrl });
}

export class PlatformError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.status} ${problem.title}: ${problem.detail ?? ""}`);
  }
}

export async function signIn(email: string, password: string): Promise<{ access: string; refresh: string }> {
  const { data, error } = await platform().POST("/v1/auth/login", { body: { email, password } });
  if (error) throw new PlatformError(error as Problem);
  return { access: data.access_token, refresh: data.refresh_token };
}

export async function catalog(language: string): Promise<Book[]> {
  const books: Book[] = [];
  let cursor: string | undefined;
  do {
    const { data, error } = await platform().GET("/v1/books", {
      params: { query: { language, limit: 50, cursor } },
    });
    if (error) throw new PlatformError(error as Problem);
    books.push(...data.items);
    cursor = data.next_cursor ?? undefined;
  } while (cursor);
  return books;
}

export async function linkToRead(access: string, book: Book): Promise<Link> {
  const { data, error } = await platform().POST("/v1/deliveries", {
    body: { book_id: book.id, format: book.formats?.some((f) => f.format === "pdf-lite") ? "pdf-lite" : "pdf" },
    headers: { Authorization: `Bearer ${access}` },
  });
  if (error) throw new PlatformError(error as Problem);
  return data; // data.url is valid until data.expires_at: ask again after that
}

export async function readFirstBook(email: string, password: string): Promise<string> {
  const { access } = await signIn(email, password);
  const [first] = await catalog("en");
  if (!first) return "the catalog is empty";
  const link = await linkToRead(access, first);
  return `${first.title} (${first.language}, ages ${first.age_min}-${first.age_max}): ${link.url} until ${link.expires_at}`;
}
