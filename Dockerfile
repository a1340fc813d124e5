# The ksp image for distributed runs (README "Scale-out"): the same CLI, with
# its production dependencies only. Build: docker build -t ksp:0.1.0 .
# Credentials never go into the image: on EKS the pod's service account
# (IRSA) or on AWS Batch the job role gives the AWS SDK its credentials.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY bin ./bin
# Built here (prepack builds only for npm pack), then the dev dependencies dropped.
RUN npm ci && npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    KSP_TMPDIR=/scratch
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bin ./bin
# Spill files of shuffle units go to /scratch (an emptyDir in Kubernetes); the root file system may be read-only.
RUN mkdir -p /scratch && chown node:node /scratch
USER node
ENTRYPOINT ["node", "/app/bin/ksp.js"]
CMD ["--help"]
