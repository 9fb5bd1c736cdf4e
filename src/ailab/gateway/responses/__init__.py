"""OpenAI's Responses API (`/v1/responses`) over the gateway's request cycle: native pass-through to
deployments that speak it (OpenAI, Azure), translated to chat completions for every other provider."""
