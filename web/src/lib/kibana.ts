/** A link to Kibana's Discover showing every line of one trace (app, nginx, model batch). */
export function discoverUrl(kibana: string, traceId: string): string {
  const id = traceId.replace(/[^A-Za-z0-9._-]/g, '') // the API's own trace id alphabet
  const query = `trace.id : "${id}" or inference.trace_ids : "${id}"`
  // Rison, as Kibana's URL state is written: strings in single quotes, ! escapes ' and !.
  const rison = query.replace(/!/g, '!!').replace(/'/g, "!'")
  const state = `_g=(time:(from:now-7d,to:now))&_a=(query:(language:kuery,query:'${rison}'))`
  return `${kibana.replace(/\/$/, '')}/app/discover#/?${encodeURI(state)}`
}
