FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
COPY workers ./workers
COPY static ./static
RUN pip install --no-cache-dir .
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
CMD ["python", "-m", "server"]
