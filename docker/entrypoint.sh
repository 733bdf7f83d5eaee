#!/bin/sh
# SageMaker runs a training container as `<image> train` and an inference container as `<image> serve`.
set -e
case "$1" in
  train) shift; exec object2vec train --sagemaker "$@" ;;
  serve) shift; exec object2vec serve --sagemaker "$@" ;;
  *) exec object2vec "$@" ;;
esac
