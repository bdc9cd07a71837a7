// A device plugin for simulated GPUs: it tells the kubelet that this node has -count devices of
// -resource, so that the kubelet's device manager (not a node status patch) advertises them and
// assigns them to containers. No GPU exists: each container it allocates to gets the assigned
// device IDs in NVIDIA_VISIBLE_DEVICES and SERVING_CONFORMANCE_SIMULATED_GPU=true, and the node
// is labelled simulated by the suite.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	api "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

const endpoint = "serving-conformance-gpu.sock"

type plugin struct {
	api.UnimplementedDevicePluginServer
	devices []*api.Device
}

func (p *plugin) GetDevicePluginOptions(context.Context, *api.Empty) (*api.DevicePluginOptions, error) {
	return &api.DevicePluginOptions{}, nil
}

// ListAndWatch sends the devices once; they never change, so the stream then stays open until
// the kubelet closes it.
func (p *plugin) ListAndWatch(_ *api.Empty, stream grpc.ServerStreamingServer[api.ListAndWatchResponse]) error {
	if err := stream.Send(&api.ListAndWatchResponse{Devices: p.devices}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (p *plugin) Allocate(_ context.Context, req *api.AllocateRequest) (*api.AllocateResponse, error) {
	resp := &api.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		resp.ContainerResponses = append(resp.ContainerResponses, &api.ContainerAllocateResponse{
			Envs: map[string]string{
				"NVIDIA_VISIBLE_DEVICES":             strings.Join(c.DevicesIds, ","),
				"SERVING_CONFORMANCE_SIMULATED_GPU": "true",
			},
		})
	}
	return resp, nil
}

func (p *plugin) PreStartContainer(context.Context, *api.PreStartContainerRequest) (*api.PreStartContainerResponse, error) {
	return &api.PreStartContainerResponse{}, nil
}

// serve listens on the plugin's socket and registers it with the kubelet.
func serve(dir, resource string, p *plugin) (*grpc.Server, error) {
	socket := filepath.Join(dir, endpoint)
	_ = os.Remove(socket)
	listener, err := net.Listen("unix", socket)
	if err != nil {
		return nil, err
	}
	server := grpc.NewServer()
	api.RegisterDevicePluginServer(server, p)
	go func() { _ = server.Serve(listener) }()
	conn, err := grpc.NewClient("unix://"+filepath.Join(dir, "kubelet.sock"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		server.Stop()
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = api.NewRegistrationClient(conn).Register(ctx, &api.RegisterRequest{
		Version: api.Version, Endpoint: endpoint, ResourceName: resource,
	})
	if err != nil {
		server.Stop()
		return nil, fmt.Errorf("registering with the kubelet: %w", err)
	}
	return server, nil
}

func main() {
	dir := flag.String("dir", api.DevicePluginPath, "the kubelet's device plugin directory")
	resource := flag.String("resource", "nvidia.com/gpu", "the extended resource advertised")
	count := flag.Int("count", 4, "how many simulated devices")
	flag.Parse()
	p := &plugin{}
	for i := 0; i < *count; i++ {
		p.devices = append(p.devices, &api.Device{ID: fmt.Sprintf("simulated-gpu-%d", i), Health: api.Healthy})
	}
	// A restarted kubelet removes every socket in the directory: register again when ours is gone.
	for {
		server, err := serve(*dir, *resource, p)
		if err != nil {
			log.Printf("%v; retrying", err)
			time.Sleep(2 * time.Second)
			continue
		}
		log.Printf("registered %d %s devices with the kubelet", *count, *resource)
		for {
			time.Sleep(2 * time.Second)
			if _, err := os.Stat(filepath.Join(*dir, endpoint)); err != nil {
				break
			}
		}
		server.Stop()
	}
}
