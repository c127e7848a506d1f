# cnnctl on TensorFlow's own GPU image (CUDA and cuDNN included).
# Build: docker build -t cnnctl .    Run: docker run --gpus all -v "$PWD:/work" -w /work cnnctl train recipes/digits_cnn.yaml
FROM tensorflow/tensorflow:2.21.0-gpu
WORKDIR /opt/cnnctl
COPY pyproject.toml README.md ./
COPY cnnctl ./cnnctl
COPY recipes ./recipes
RUN pip install --no-cache-dir .
WORKDIR /work
ENTRYPOINT ["cnnctl"]
CMD ["--help"]
